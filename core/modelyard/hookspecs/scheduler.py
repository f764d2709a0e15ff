"""The ``scheduler`` slot: jobs (build, batch predict, evaluate, retrain) run off the request path."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from modelyard.hookspecs.markers import hookspec
from modelyard.providers import SchedulerProvider
from modelyard.types import utcnow

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


@attrs.frozen(kw_only=True)
class Job:
    """One unit of background work and its state."""

    id: str
    kind: str
    state: JobState = "queued"
    params: Mapping[str, Any] = attrs.field(factory=dict)
    result: Mapping[str, Any] | None = None
    error: str | None = None
    attempts: int = 0
    created_at: Any = attrs.field(factory=utcnow)
    updated_at: Any = attrs.field(factory=utcnow)


@runtime_checkable
class Scheduler(Protocol):
    """What a scheduler provider promises."""

    def submit(self, kind: str, fn: Callable[..., Mapping[str, Any] | None], /, *, params: Mapping[str, Any],
               retries: int = 0) -> Job:
        """Queue ``fn(**params)``; returns the job record immediately."""
        ...

    def get(self, job_id: str) -> Job:
        """A job's current record; NotFound if unknown."""
        ...

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job ends (or the timeout passes) and return its record."""
        ...

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job (running ones are cancelled when they next yield)."""
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
