"""The ``none`` billing provider: no metering, no quotas, empty reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from modelyard.providers import NoConfig, ProviderContext
from modelyard.types import Principal


@attrs.define
class NoBilling:
    """Implements :class:`modelyard.hookspecs.billing.Meter` by doing nothing.

    It implements no event hook, so the platform does not register it as an observer: the predict path pays
    nothing for it.
    """

    @classmethod
    def from_config(cls, config: NoConfig, ctx: ProviderContext | None = None) -> NoBilling:
        """The provider factory: ``[billing] use = "none"``."""
        return cls()

    def check_quota(self, principal: Principal, deployment: str) -> None:
        """Never raises: there are no quotas (the predict path pays one method call)."""

    def report(self, *, start: Any = None, end: Any = None, group_by: str = "principal") -> list[Mapping[str, Any]]:
        """Always empty: nothing is metered."""
        return []

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        """Nothing to release."""
