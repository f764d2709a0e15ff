"""The embedded in-process runtime and scheduler: the defaults of the ``runtime`` and ``scheduler`` slots.

``[runtime] use = "local"`` serves every deployment in this process from one thread pool, with dynamic batching
(:mod:`modelyard_plugins.local.runtime`); ``[scheduler] use = "local"`` runs jobs on a small worker pool
(:mod:`modelyard_plugins.local.scheduler`). Registered through the ``modelyard`` entry-point group like any
third-party plugin.
"""

from __future__ import annotations

from collections.abc import Iterator

from modelyard import hookimpl
from modelyard.providers import RuntimeProvider, SchedulerProvider

from modelyard_plugins.local.runtime import LocalRuntime, LocalRuntimeConfig
from modelyard_plugins.local.scheduler import LocalScheduler, LocalSchedulerConfig


@hookimpl
def modelyard_runtimes() -> Iterator[RuntimeProvider]:
    """Offer the ``local`` runtime: in-process, shared thread pool, dynamic batching, multi-model."""
    yield RuntimeProvider(name="local", factory=LocalRuntime.from_config, config_schema=LocalRuntimeConfig,
                          description="in-process serving: thread pool, dynamic batching, multi-model",
                          needs=("loader",))


@hookimpl
def modelyard_schedulers() -> Iterator[SchedulerProvider]:
    """Offer the ``local`` scheduler: an in-memory worker pool with retries and cancel."""
    yield SchedulerProvider(name="local", factory=LocalScheduler.from_config, config_schema=LocalSchedulerConfig,
                            description="in-process worker pool (in-memory jobs, retries, cancel)",
                            needs=("platform",))  # jobs run against the whole platform (JobContext.platform)


__all__ = ["LocalRuntime", "LocalRuntimeConfig", "LocalScheduler", "LocalSchedulerConfig"]
