"""The ``billing`` slot: meter usage per principal, team and deployment; plans, quotas, reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from modelyard.hookspecs.markers import hookspec, renamed
from modelyard.providers import BillingProvider
from modelyard.types import Principal


@runtime_checkable
class Meter(Protocol):
    """What a billing provider promises. It is also registered as a plugin, so it meters by implementing
    :func:`~modelyard.hookspecs.monitor.modelyard_on_prediction` (buffer on the hot path, persist off it)."""

    def check_quota(self, principal: Principal, deployment: str) -> None:
        """Raise :class:`~modelyard.errors.QuotaExceeded` (HTTP 429, ``quota-exceeded``) when ``principal`` (or its
        team) has used up a quota for ``deployment``; return None otherwise.

        Called on the predict path, once per prediction request, after the request was authorised and before
        the runtime runs it (``Platform.check_predict``): answer from memory — a dict lookup or two against
        counters the meter keeps from ``modelyard_on_prediction`` — never from the database or the network.
        A meter without quotas returns at once.
        """
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
def modelyard_meters() -> Iterable[BillingProvider]:  # type: ignore[empty-body]
    """Offer meters: the providers of the ``billing`` slot (``none``, ``metered``, …).

    Called once per plugin manager, at assembly.

    Returns:
        An iterable of :class:`~modelyard.providers.BillingProvider`; the factory returns a :class:`Meter`.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_meters():
                yield BillingProvider(name="metered", factory=MeteredBilling.from_config,
                                      config_schema=MeteredConfig)
    """


@hookspec(warn_on_impl=renamed("modelyard_billing_providers", "modelyard_meters"))
def modelyard_billing_providers() -> Iterable[BillingProvider]:  # type: ignore[empty-body]
    """Deprecated former name of :func:`modelyard_meters`; implement that instead.

    Called, and its results collected, exactly like :func:`modelyard_meters`, for one more release (it is
    removed in modelyard 0.3); registering a plugin that implements it emits a ``DeprecationWarning`` naming
    the new hook.

    Returns:
        An iterable of :class:`~modelyard.providers.BillingProvider`; the factory returns a :class:`Meter`.

    All results are collected, together with those of :func:`modelyard_meters`.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_meters():  # rename the function; its body stays the same
                ...
    """
