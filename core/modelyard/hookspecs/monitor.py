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
    from modelyard.types import Job


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

    Called after the record was written and the runtime of the process that took the call converged (or
    failed to); ``change`` is one of ``"deployed"``, ``"updated"``, ``"failed"``, ``"undeployed"``,
    ``"restored"``. Each implementation is called on its own: a failing observer is logged with its plugin's
    name and never turns the committed change into an error.

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
def modelyard_on_deploy_error(deployment: Deployment, error: BaseException) -> None:
    """React to a deploy that failed (kedro's ``on_pipeline_error``, for deployments).

    Called once per failed ``Platform.deploy``, in the process that took the call, after the failure was
    recorded (the record is ``failed``, or back at the version that keeps serving) and before the error reaches
    the caller; ``modelyard_after_deployment_changed`` with ``change="failed"`` follows.

    Args:
        deployment: the record that was asked for, with ``state="failed"`` and the reason in ``message``.
        error: the exception the caller receives.

    Returns:
        Nothing; all implementations are called, each on its own (a failing one is logged, never raised).

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_on_deploy_error(deployment, error):
                page_oncall(f"deploy of {deployment.name} failed: {error}")
    """


@hookspec
def modelyard_on_undeploy_error(deployment: Deployment, error: BaseException) -> None:
    """React to an undeploy whose record could not be deleted (the deployment keeps serving everywhere).

    Called once per failed ``Platform.undeploy``, before the error reaches the caller.

    Args:
        deployment: the record that stays.
        error: the exception the caller receives.

    Returns:
        Nothing; all implementations are called, each on its own.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_on_undeploy_error(deployment, error):
                log.error("undeploy failed", deployment=deployment.name, error=str(error))
    """


@hookspec
def modelyard_on_registration_error(model: str, flavor: str, error: BaseException) -> None:
    """React to a registration that failed (bad upload, failed validation, storage or registry error).

    Called once per failed ``platform.registry.register``, after everything it wrote was rolled back and
    before the error reaches the caller.

    Args:
        model: the model name asked for.
        flavor: the flavor asked for.
        error: the exception the caller receives.

    Returns:
        Nothing; all implementations are called, each on its own.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_on_registration_error(model, flavor, error):
                metrics.registration_failures.labels(flavor).inc()
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
