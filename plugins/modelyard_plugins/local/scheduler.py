"""The embedded ``local`` scheduler: a small worker pool running jobs in this process.

A job is a job kind, looked up by name among those the plugins offer (``modelyard_job_kinds``), and JSON
params: :meth:`LocalScheduler.submit` checks both before anything is queued, and each attempt looks the kind up
again and converts the params anew, exactly as a worker in another process would.

Jobs move ``queued → running → succeeded | failed | cancelled``; a failed attempt with retries left goes back to
``queued`` after an exponential backoff. Cancelling a queued job (or one waiting out its backoff) ends it at once;
a running job cannot be interrupted, but a job that calls :func:`raise_if_cancelled` stops there, and one that
fails after being cancelled ends ``cancelled`` instead of being retried. ``modelyard_after_job_finished`` fires
once per job after its final state is recorded.

Jobs live in memory only, and there are no cron schedules yet: persistence in the registry, resume after a crash
and cron come in a later issue.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import structlog
from modelyard.errors import Conflict, InvalidInput, NotFound, Unavailable
from modelyard.events import notify
from modelyard.jobs import JobCancelled, JobContext, JobKinds
from modelyard.providers import ProviderContext
from modelyard.types import FINAL_JOB_STATES, Job, check_json, utcnow

log = structlog.get_logger(__name__)

#: The most retries one job may ask for: every piece of work a request starts is bounded.
MAX_RETRIES = 100
_current = threading.local()


@attrs.frozen(kw_only=True)
class LocalSchedulerConfig:
    """The ``[scheduler]`` section when ``use = "local"``.

    Attributes:
        workers: jobs running at once.
        backoff_s: delay before the first retry; doubles with every further attempt.
        max_backoff_s: upper bound of that delay.
    """

    workers: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    backoff_s: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    max_backoff_s: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))


def raise_if_cancelled() -> None:
    """Inside a job running on this scheduler: raise :class:`~modelyard.jobs.JobCancelled` if someone cancelled
    it (a cooperative yield point). Outside a job it does nothing, so job functions stay callable on their own.

    A job kind that may run on other schedulers calls ``ctx.raise_if_cancelled()`` instead.
    """
    event = getattr(_current, "cancel", None)
    if event is not None and event.is_set():
        raise JobCancelled("the job was cancelled")


@attrs.define(eq=False)
class _Slot:
    """A job's mutable bookkeeping next to its frozen record."""

    job: Job
    cancel: threading.Event = attrs.field(factory=threading.Event)
    timer: threading.Timer | None = None
    done: threading.Event = attrs.field(factory=threading.Event)


@attrs.define(eq=False)
class LocalScheduler:
    """Runs jobs on a thread pool; implements :class:`modelyard.hookspecs.scheduler.Scheduler`.

    ``kinds`` is the catalogue jobs are looked up in (:meth:`from_config` builds it from the plugin manager);
    ``hook`` the plugin manager's hook relay, None to run without events; ``platform`` what job kinds receive
    as ``ctx.platform``.
    """

    config: LocalSchedulerConfig = attrs.field(factory=LocalSchedulerConfig)
    kinds: JobKinds = attrs.field(factory=JobKinds)
    hook: Any = None
    platform: Any = None
    _executor: ThreadPoolExecutor = attrs.field(init=False)
    _slots: dict[str, _Slot] = attrs.field(init=False, factory=dict)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _closed: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=self.config.workers, thread_name_prefix="modelyard-job")

    @classmethod
    def from_config(cls, config: LocalSchedulerConfig, ctx: ProviderContext | None = None) -> LocalScheduler:
        """The provider factory: ``[scheduler] use = "local"``; runs the kinds ``ctx``'s plugins offer."""
        if ctx is None:
            return cls(config)
        return cls(config, kinds=JobKinds.from_plugin_manager(ctx.plugin_manager), hook=ctx.hook,
                   platform=ctx.platform)

    # ------------------------------------------------------------------------------------------- API
    def submit(self, kind: str, params: Mapping[str, Any] | None = None, *, retries: int = 0) -> Job:
        """Queue a job of ``kind`` with ``params``; returns the queued record at once.

        The kind must be installed and the params must be JSON that fits its schema, else
        :class:`~modelyard.errors.InvalidInput` names the field and nothing is queued. ``retries`` (0 to
        :data:`MAX_RETRIES`) further attempts are made after a failure, each after an exponential backoff.
        """
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
            raise InvalidInput(f"retries: expected an integer from 0 to {MAX_RETRIES}, got {retries!r:.40}",
                               field="retries")
        data, _ = self.kinds.get(kind).check_params(params)
        job = Job(id=uuid.uuid4().hex, kind=kind, params=data, retries=retries)
        slot = _Slot(job=job)
        with self._lock:
            if self._closed:
                raise Unavailable("the local scheduler is closed and accepts no jobs")
            self._slots[job.id] = slot
            self._executor.submit(self._run, slot)
        log.debug("job queued", job=job.id, kind=kind)
        return job

    def get(self, job_id: str) -> Job:
        """The job's current record; NotFound if unknown."""
        return self._slot(job_id).job

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job ends or ``timeout`` seconds pass; returns its record either way."""
        slot = self._slot(job_id)
        slot.done.wait(timeout)
        return slot.job

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued one (or one waiting to retry) ends ``cancelled`` now; a running one is asked to
        stop (see :func:`raise_if_cancelled`) and is not retried. Cancelling a cancelled job returns it
        unchanged; a succeeded or failed one raises :class:`~modelyard.errors.Conflict`."""
        slot = self._slot(job_id)
        with self._lock:
            state = slot.job.state
            if state == "cancelled":
                return slot.job
            if state in FINAL_JOB_STATES:
                raise Conflict(f"job {job_id!r} already {state}; only queued or running jobs can be cancelled")
            slot.cancel.set()
            if state == "running":
                return slot.job
            if slot.timer is not None:
                slot.timer.cancel()
                slot.timer = None
            # A queued job's worker call may still come; _run sees the final state and skips it.
            self._set(slot, state="cancelled")
        self._finished(slot)
        return slot.job

    def list(self) -> list[Job]:
        """Every job known to this process, newest first."""
        with self._lock:
            return [s.job for s in reversed(self._slots.values())]

    def close(self) -> None:
        """Stop accepting jobs, cancel queued ones and wait for running ones. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            queued = [s for s in self._slots.values() if s.job.state == "queued"]
        for slot in queued:
            try:
                self.cancel(slot.job.id)
            except Conflict:
                pass  # it ended meanwhile
        self._executor.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------------------------------- internals
    def _slot(self, job_id: str) -> _Slot:
        slot = self._slots.get(job_id)
        if slot is None:
            raise NotFound(f"job {job_id!r} does not exist on the local scheduler")
        return slot

    def _set(self, slot: _Slot, **changes: Any) -> None:
        # Under self._lock: records are frozen, so every transition swaps in a new one.
        now = utcnow()
        if changes.get("state") in FINAL_JOB_STATES:
            changes["finished_at"] = now
        slot.job = attrs.evolve(slot.job, updated_at=now, **changes)

    def _run(self, slot: _Slot) -> None:
        with self._lock:
            if slot.job.state != "queued":  # cancelled while it waited for a worker
                return
            self._set(slot, state="running", attempts=slot.job.attempts + 1,
                      started_at=slot.job.started_at or utcnow())
            job = slot.job
        log.debug("job running", job=job.id, kind=job.kind, attempt=job.attempts)
        _current.cancel = slot.cancel
        try:
            # By name and from the JSON, every attempt: what a worker elsewhere (or after a restart) would do.
            kind = self.kinds.get(job.kind)
            _, params = kind.check_params(job.params)
            ctx = JobContext(job=job, platform=self.platform, hook=self.hook, is_cancelled=slot.cancel.is_set)
            value = kind.run(params, ctx)
            wrapped = value if value is None or isinstance(value, Mapping) else {"value": value}
            result = None if wrapped is None else check_json(wrapped, field="result")
        except BaseException as exc:
            self._attempt_failed(slot, exc, job.attempts)
            return
        finally:
            _current.cancel = None
        with self._lock:
            self._set(slot, state="succeeded", result=result, error=None)
        log.info("job succeeded", job=job.id, kind=job.kind, attempts=job.attempts)
        self._finished(slot)

    def _attempt_failed(self, slot: _Slot, exc: BaseException, attempt: int) -> None:
        error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            if slot.cancel.is_set():
                self._set(slot, state="cancelled", error=error)
                final = True
            elif attempt <= slot.job.retries and not self._closed:
                delay = min(self.config.max_backoff_s, self.config.backoff_s * 2 ** (attempt - 1))
                self._set(slot, state="queued", error=error)
                slot.timer = threading.Timer(delay, self._requeue, args=(slot,))
                slot.timer.daemon = True
                slot.timer.start()
                final = False
            else:
                self._set(slot, state="failed", error=error)
                final = True
        if final:
            log.warning("job ended", job=slot.job.id, kind=slot.job.kind, state=slot.job.state, error=error,
                        attempts=attempt)
            self._finished(slot)
        else:
            log.info("job attempt failed; retrying", job=slot.job.id, kind=slot.job.kind, attempt=attempt,
                     retry_in_s=round(delay, 3), error=error)

    def _requeue(self, slot: _Slot) -> None:
        with self._lock:
            slot.timer = None
            if slot.job.state != "queued":
                return
            if self._closed:
                self._set(slot, state="cancelled")
            else:
                try:
                    self._executor.submit(self._run, slot)
                    return
                except RuntimeError:  # shut down meanwhile
                    self._set(slot, state="cancelled")
        self._finished(slot)

    def _finished(self, slot: _Slot) -> None:
        job = slot.job
        slot.done.set()
        if self.hook is None:
            return
        notify(self.hook, "modelyard_after_job_finished", job=job)  # each observer on its own


__all__ = ["JobCancelled", "LocalScheduler", "LocalSchedulerConfig", "raise_if_cancelled"]
