"""The ``auth`` slot (request → principal), the authorisation decision hook (any deny wins) and the actions
plugins add to the catalogue (:mod:`modelyard.actions`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from modelyard.hookspecs.markers import hookspec, renamed
from modelyard.providers import AuthProvider
from modelyard.types import Principal

if TYPE_CHECKING:
    from modelyard.actions import Action


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
def modelyard_authenticators() -> Iterable[AuthProvider]:  # type: ignore[empty-body]
    """Offer authenticators: the providers of the ``auth`` slot (``anonymous``, ``apikeys``, ``oidc``, …).

    Called once per plugin manager, at assembly.

    Returns:
        An iterable of :class:`~modelyard.providers.AuthProvider`; the factory returns an
        :class:`Authenticator`.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_authenticators():
                yield AuthProvider(name="oidc", factory=OidcAuth.from_config, config_schema=OidcConfig)
    """


@hookspec(warn_on_impl=renamed("modelyard_auth_providers", "modelyard_authenticators"))
def modelyard_auth_providers() -> Iterable[AuthProvider]:  # type: ignore[empty-body]
    """Deprecated former name of :func:`modelyard_authenticators`; implement that instead.

    Called, and its results collected, exactly like :func:`modelyard_authenticators`, for one more release (it
    is removed in modelyard 0.3); registering a plugin that implements it emits a ``DeprecationWarning``
    naming the new hook.

    Returns:
        An iterable of :class:`~modelyard.providers.AuthProvider`; the factory returns an
        :class:`Authenticator`.

    All results are collected, together with those of :func:`modelyard_authenticators`.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_authenticators():  # rename the function; its body stays the same
                ...
    """


@hookspec
def modelyard_authorize(principal: Principal, action: str, resource: str) -> bool | None:
    """Take part in an authorisation decision beyond the auth provider's own.

    Called by ``Platform.authorize`` — once per decision, whichever interface asked (HTTP, CLI, Python,
    scheduler) — after the auth provider allowed it. Return ``False`` to deny, ``True`` or ``None`` to abstain.
    Any ``False`` wins; an exception in an implementation denies (fails closed). It may be called on the predict
    path: answer from memory.

    Args:
        principal: who is acting.
        action: a name from the action catalogue (``docs/actions.md``) such as ``"models:register"``,
            ``"deployments:create"``, ``"predict"``.
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


@hookspec
def modelyard_actions() -> Iterable[Action]:  # type: ignore[empty-body]
    """Add actions to the catalogue that authorisation, audit and the docs share (:mod:`modelyard.actions`).

    Called once per platform, at assembly (and by ``create_app``'s check of the routes, through the platform).
    A plugin whose routes or verbs authorise or audit an action of their own names it here; the core's actions
    (``models:*``, ``deployments:*``, ``predict``) are already in the catalogue.

    Returns:
        An iterable of :class:`~modelyard.actions.Action`; two actions with one name (the core's included) are a
        ``PluginError`` naming both plugins.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_actions():
                yield Action(name="acme.reports:read", resources=("reports", "reports/{name}"),
                             description="Read usage reports.", role="reader")
    """
