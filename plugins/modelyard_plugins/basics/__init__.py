"""Small embedded providers so every slot has a default: ``anonymous`` auth, ``none`` billing, ``log`` monitor.

They are what an embedded platform or ``modelyard serve --dev`` runs with when the config names nothing better;
the production choices (API keys, metered billing, Prometheus) come from their own plugins.
"""

from __future__ import annotations

from collections.abc import Iterator

from modelyard import hookimpl
from modelyard.providers import AuthProvider, BillingProvider, MonitorProvider

from modelyard_plugins.basics.auth import AnonymousAuth
from modelyard_plugins.basics.billing import NoBilling
from modelyard_plugins.basics.monitor import LogMonitor, LogMonitorConfig


@hookimpl
def modelyard_authenticators() -> Iterator[AuthProvider]:
    """Offer ``anonymous`` auth: everyone is the anonymous admin (dev mode, embedding)."""
    yield AuthProvider(name="anonymous", factory=AnonymousAuth.from_config,
                       description="no credentials: every request is the anonymous principal (dev mode)")


@hookimpl
def modelyard_meters() -> Iterator[BillingProvider]:
    """Offer ``none`` billing: no metering, no quotas."""
    yield BillingProvider(name="none", factory=NoBilling.from_config, description="no metering, no quotas")


@hookimpl
def modelyard_monitors() -> Iterator[MonitorProvider]:
    """Offer the ``log`` monitor: per-deployment summary lines (count, errors, p50/p99) every interval."""
    yield MonitorProvider(name="log", factory=LogMonitor.from_config, config_schema=LogMonitorConfig,
                          description="periodic per-deployment prediction summaries in the log")


__all__ = ["AnonymousAuth", "LogMonitor", "LogMonitorConfig", "NoBilling"]
