"""The ``auth`` slot (request → principal) and the authorisation decision hook (any deny wins)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from modelyard.hookspecs.markers import hookspec
from modelyard.providers import AuthProvider
from modelyard.types import Principal


@runtime_checkable
class Authenticator(Protocol):
    """What an auth provider promises."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        """The principal the request's headers prove, or None when they prove nothing (→ 401)."""
        ...

    def authorize(self, principal: Principal, action: str, resource: str) -> bool:
        """The provider's own decision for ``action`` (e.g. ``"models:register"``) on ``resource``."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


@hookspec
def modelyard_auth_providers() -> Iterable[AuthProvider]:  # type: ignore[empty-body]
    """Offer auth providers (``anonymous``, ``apikeys``, ``oidc``, …).

    Called once per plugin manager, at assembly.

    Returns:
        An iterable of :class:`~modelyard.providers.AuthProvider`; the factory returns an :class:`Authenticator`.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_auth_providers():
                yield AuthProvider(name="oidc", factory=OidcAuth.from_config, config_schema=OidcConfig)
    """


@hookspec
def modelyard_authorize(principal: Principal, action: str, resource: str) -> bool | None:
    """Take part in an authorisation decision beyond the auth provider's own.

    Called for every authorised action, after the auth provider allowed it. Return ``False`` to deny, ``True``
    or ``None`` to abstain. Any ``False`` wins; an exception in an implementation denies (fails closed).

    Args:
        principal: who is acting.
        action: ``"<area>:<verb>"`` such as ``"models:register"``, ``"deployments:create"``, ``"predict"``.
        resource: what it acts on, e.g. ``"models/churn"``.

    Returns:
        ``False`` to deny, ``True`` or ``None`` to abstain.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_authorize(principal, action, resource):
                if action == "deployments:delete" and "admin" not in principal.roles:
                    return False
    """
