"""The ``billing`` slot: meter usage per principal, team and deployment; plans, quotas, reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from modelyard.hookspecs.markers import hookspec
from modelyard.providers import BillingProvider


@runtime_checkable
class Meter(Protocol):
    """What a billing provider promises. It is also registered as a plugin, so it meters by implementing
    :func:`~modelyard.hookspecs.monitor.modelyard_on_prediction` (buffer on the hot path, persist off it)."""

    def check_quota(self, principal: str, deployment: str) -> None:
        """Raise :class:`~modelyard.errors.Forbidden` (or Overloaded) when a quota is exhausted; cheap."""
        ...

    def report(self, *, start: Any = None, end: Any = None, group_by: str = "principal") -> list[Mapping[str, Any]]:
        """Usage and charges for a period, grouped by principal, team or deployment."""
        ...

    def flush(self) -> None:
        """Persist buffered usage now."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...


@hookspec
def modelyard_billing_providers() -> Iterable[BillingProvider]:  # type: ignore[empty-body]
    """Offer billing providers (``none``, ``metered``, …).

    Called once per plugin manager, at assembly.

    Returns:
        An iterable of :class:`~modelyard.providers.BillingProvider`; the factory returns a :class:`Meter`.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_billing_providers():
                yield BillingProvider(name="metered", factory=MeteredBilling.from_config,
                                      config_schema=MeteredConfig)
    """
