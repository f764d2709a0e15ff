"""The ``monitors`` slot and the event hooks every plugin may implement.

Monitors are providers whose factory result is registered into the plugin manager, so they receive events by
implementing the event hooks below. Event hooks on the predict path must be cheap: record into memory or a
queue and return; flush, aggregate and write elsewhere (DESIGN "the predict path is the hottest code").
A failing observer is logged with its plugin's name; the request still succeeds (STYLE 11).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from modelyard.hookspecs.markers import hookspec
from modelyard.providers import MonitorProvider
from modelyard.types import Deployment, ModelVersion, PredictionEvent

if TYPE_CHECKING:
    from modelyard.hookspecs.scheduler import Job


@hookspec
def modelyard_monitors() -> Iterable[MonitorProvider]:  # type: ignore[empty-body]
    """Offer monitor providers (``log``, ``prometheus``, ``drift``, …).

    Called once per plugin manager, at assembly. Each configured monitor's factory result is registered as a
    plugin so that it can implement the event hooks.

    Returns:
        An iterable of :class:`~modelyard.providers.MonitorProvider`.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_monitors():
                yield MonitorProvider(name="prometheus", factory=lambda cfg, ctx: PrometheusMonitor(cfg))
    """


@hookspec
def modelyard_on_prediction(event: PredictionEvent) -> None:
    """Observe one served prediction (successful or not).

    Called on the request path after each prediction, synchronously, once per request (a batched call yields
    one event per request). Implementations must not block: append to a buffer and return.

    Args:
        event: deployment, model, version, rows, latency and outcome.

    Returns:
        Nothing; all implementations are called.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_on_prediction(event):
                self.latencies.append(event.latency_s)
    """


@hookspec
def modelyard_after_model_registered(version: ModelVersion) -> None:
    """React to a newly registered model version.

    Called once per registration, after the version is committed to the registry.

    Args:
        version: the new version record.

    Returns:
        Nothing; all implementations are called.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_after_model_registered(version):
                notify_slack(f"{version.model}:{version.number} registered")
    """


@hookspec
def modelyard_after_alias_set(version: ModelVersion, alias: str) -> None:
    """React to an alias being pointed at a version (e.g. a promotion to ``production``).

    Called after the alias moved, once per move.

    Args:
        version: the version the alias now points at.
        alias: the alias name.

    Returns:
        Nothing; all implementations are called.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_after_alias_set(version, alias):
                if alias == "production":
                    audit_promotion(version)
    """


@hookspec
def modelyard_after_deployment_changed(deployment: Deployment, change: str) -> None:
    """React to a deployment being created, updated, failing or removed.

    Called after the runtime acted and the record was written; ``change`` is one of ``"deployed"``,
    ``"updated"``, ``"failed"``, ``"undeployed"``, ``"restored"``.

    Args:
        deployment: the deployment record after the change.
        change: what happened.

    Returns:
        Nothing; all implementations are called.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_after_deployment_changed(deployment, change):
                log.info("deployment", name=deployment.name, change=change)
    """


@hookspec
def modelyard_after_job_finished(job: Job) -> None:
    """React to a job ending (succeeded, failed or cancelled).

    Called once per job, by the scheduler, after the final state is recorded.

    Args:
        job: the final job record.

    Returns:
        Nothing; all implementations are called.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_after_job_finished(job):
                if job.state == "failed":
                    page_oncall(job)
    """


@hookspec
def modelyard_on_alert(name: str, severity: str, message: str, labels: Mapping[str, Any]) -> None:
    """Receive an alert raised by a monitor (drift over threshold, error rate, …).

    Called by whichever plugin raised it, off the request path.

    Args:
        name: the alert's name, e.g. ``"drift"``.
        severity: ``"info"``, ``"warning"`` or ``"critical"``.
        message: a human sentence.
        labels: deployment, model, version and alert-specific values.

    Returns:
        Nothing; all implementations are called.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_on_alert(name, severity, message, labels):
                webhook.post({"alert": name, "severity": severity, "text": message, **labels})
    """
