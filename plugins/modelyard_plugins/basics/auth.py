"""The ``anonymous`` auth provider: every request is :data:`modelyard.types.ANONYMOUS` and every action allowed.

For dev mode and embedding only; the server refuses it outside ``--dev`` (DESIGN, security defaults). Other
plugins' ``modelyard_authorize`` implementations can still deny.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from modelyard.providers import NoConfig, ProviderContext
from modelyard.types import ANONYMOUS, Principal


@attrs.define
class AnonymousAuth:
    """Implements :class:`modelyard.hookspecs.auth.Authenticator` with no credentials at all."""

    @classmethod
    def from_config(cls, config: NoConfig, ctx: ProviderContext | None = None) -> AnonymousAuth:
        """The provider factory: ``[auth] use = "anonymous"``."""
        return cls()

    def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        """Every request is the anonymous principal, whatever its headers."""
        return ANONYMOUS

    def authorize(self, principal: Principal, action: str, resource: str) -> bool:
        """Allow everything (decision hooks of other plugins may still veto)."""
        return True

    def close(self) -> None:
        """Nothing to release."""
