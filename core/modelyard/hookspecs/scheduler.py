"""The ``scheduler`` slot and the job kinds it runs: build, batch predict, evaluate, retrain — off the request path.

Jobs are plain data: a job kind named by a plugin (:func:`modelyard_job_kinds`) plus JSON params, so that a job
can be persisted, resumed after a crash and shipped to another process (:mod:`modelyard.jobs`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from modelyard.hookspecs.markers import hookspec
from modelyard.jobs import JobKind
from modelyard.providers import SchedulerProvider
from modelyard.types import Job

# ``Job`` lives in modelyard.types with the other records; it is imported here (and listed in __all__) because
# modules that predate the move import it from this one.
__all__ = ["Job", "Scheduler", "modelyard_job_kinds", "modelyard_schedulers"]


@runtime_checkable
class Scheduler(Protocol):
    """What a scheduler provider promises.

    A scheduler runs jobs of the kinds offered through :func:`modelyard_job_kinds`, looked up by name, with JSON
    params. It checks a submission before queuing it and keeps each job's record up to date — ``queued →
    running → succeeded | failed | cancelled``, a failed attempt with retries left going back to ``queued`` —
    and calls :func:`~modelyard.hookspecs.monitor.modelyard_after_job_finished` once per job, after its final
    state is recorded.
    """

    def submit(self, kind: str, params: Mapping[str, Any] | None = None, *, retries: int = 0) -> Job:
        """Queue a job of ``kind`` with ``params`` (a JSON object; None means ``{}``); returns its queued record.

        ``retries`` further attempts follow a failure. Raises :class:`~modelyard.errors.InvalidInput` before
        queuing anything for a kind that is not installed (``field="kind"``), params that are not JSON or do not
        fit the kind's schema (``field="params.<key>"``), or a bad ``retries`` (``field="retries"``).
        """
        ...

    def get(self, job_id: str) -> Job:
        """A job's current record; NotFound if unknown."""
        ...

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job ends (or the timeout passes) and return its record."""
        ...

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job (running ones are cancelled when they next check, and are not retried)."""
        ...

    def list(self) -> list[Job]:
        """All known jobs, newest first."""
        ...

    def close(self) -> None:
        """Stop accepting work and wait for running jobs."""
        ...


@hookspec
def modelyard_schedulers() -> Iterable[SchedulerProvider]:  # type: ignore[empty-body]
    """Offer scheduler providers (``local``, ``ray``, …).

    Called once per plugin manager, at assembly.

    Returns:
        An iterable of :class:`~modelyard.providers.SchedulerProvider`; the factory returns a :class:`Scheduler`.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_schedulers():
                yield SchedulerProvider(name="local", factory=LocalScheduler.from_config)
    """


@hookspec
def modelyard_job_kinds() -> Iterable[JobKind]:  # type: ignore[empty-body]
    """Offer job kinds: named units of background work that a scheduler runs with JSON params.

    Called when the scheduler is assembled, and again before a submission or a run whenever plugins were
    registered or unregistered since, so a plugin registered later (a monitor, a test plugin) adds kinds too.
    A kind's ``run(params, ctx)`` may run in another process than the one that submitted it (a worker that has
    the same plugins installed), so it must need nothing but its params and ``ctx``.

    Returns:
        An iterable of :class:`~modelyard.jobs.JobKind`, each with a name that is unique across plugins (two
        plugins offering one name are an error naming both).

    All results are collected.

    Example:
        .. code-block:: python

            @attrs.frozen(kw_only=True)
            class RetrainParams:
                model: str
                epochs: int = 10

            @hookimpl
            def modelyard_job_kinds():
                yield JobKind(name="acme.retrain", run=retrain, params_schema=RetrainParams,
                              description="retrain a model on fresh data and register the result")
    """
