"""Desired state, reconciled: each serving process converges its runtime to the deployment records.

Deployment records in the registry are the desired state (DESIGN "desired state, reconciled"). A change is
written there first — in one transaction with its audit entry — and then every process converges: the one that
took the request at once (:meth:`Reconciler.converge`), the others within a bounded delay, by polling the
registry's deployments revision (:meth:`Reconciler.start`). Several workers, several servers behind a load
balancer and the embedded CLI therefore agree, and a write that fails changes what no process serves.

Each process reports what it serves per deployment (``ServingState`` rows: version, generation, ready or
failed with the message) and heartbeats them, so ``GET /api/v1/deployments/{name}`` can show, per process,
whether it converged. Nothing here runs on the predict path.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import structlog

from modelyard.errors import ModelyardError, NotFound
from modelyard.types import Deployment, ModelRef, ServingState, utcnow

if TYPE_CHECKING:
    from modelyard.platform import Platform

log = structlog.get_logger(__name__)

#: A process whose heartbeat is older than this many poll intervals (and at least ``_STALE_MIN_S``) is shown as
#: gone: it crashed without saying so.
_STALE_INTERVALS = 5
_STALE_MIN_S = 15.0
#: Heartbeats are written every this many seconds at most (each is one small UPDATE).
_HEARTBEAT_S = 5.0


def process_id() -> str:
    """This process's name in serving reports: ``host/pid/random`` (unique even when pids are reused)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


def same_spec(a: Deployment, b: Deployment) -> bool:
    """Whether two records ask the runtime for the same thing (what serves, not when or why)."""
    return (a.model, a.version, a.batching, a.replicas, dict(a.options)) == (
        b.model, b.version, b.batching, b.replicas, dict(b.options))


@attrs.define(eq=False)
class Reconciler:
    """Converges one process's runtime to the registry's deployment records and reports what it serves.

    Thread-safe: ``converge(name)`` holds that name's lock while it acts, so a deploy, an undeploy and the
    background poll of the same name never interleave in this process; different names proceed in parallel.
    """

    platform: Platform
    process: str = attrs.field(factory=process_id)
    #: What this process's runtime was given, per deployment name: the record it converged to.
    _applied: dict[str, Deployment] = attrs.field(init=False, factory=dict)
    #: Generations whose deploy failed here: not retried by the poll (a redeploy writes a new generation).
    _failed: dict[str, int] = attrs.field(init=False, factory=dict)
    #: The records as last read (readiness is answered from memory: no registry I/O, no thread per probe).
    _records: dict[str, Deployment] = attrs.field(init=False, factory=dict)
    #: Whether the first full pass (the restore at start) finished.
    converged_once: bool = attrs.field(init=False, default=False)
    _locks: dict[str, threading.Lock] = attrs.field(init=False, factory=dict)
    _guard: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _seen_revision: int | None = attrs.field(init=False, default=None)
    _thread: threading.Thread | None = attrs.field(init=False, default=None)
    _stop: threading.Event = attrs.field(init=False, factory=threading.Event)
    _last_heartbeat: float = attrs.field(init=False, default=0.0)
    interval_s: float = attrs.field(init=False, default=1.0)

    @property
    def _backend(self) -> Any:
        return self.platform.registry_backend

    def lock(self, name: str) -> threading.Lock:
        """The lock that serialises every change of deployment ``name`` in this process."""
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def applied(self, name: str) -> Deployment | None:
        """The record this process's runtime serves under ``name`` (None: nothing)."""
        return self._applied.get(name)

    # ------------------------------------------------------------------------------------------- converging
    def converge(self, name: str, record: Deployment | Callable[[], Deployment | None] | None = None, *,
                 raise_errors: bool = False, locked: bool = False) -> ServingState | None:
        """Make the runtime serve what ``record`` says for ``name`` (read from the registry when omitted).

        ``record=None`` read from the registry means "no record": the deployment is taken down here. Returns
        this process's report (None when nothing serves). With ``raise_errors`` a failed deploy raises (the
        caller records it); otherwise it is reported as ``failed`` and logged.
        """
        if locked:
            return self._converge(name, record, raise_errors)
        with self.lock(name):
            return self._converge(name, record, raise_errors)

    def _converge(self, name: str, record: Any, raise_errors: bool) -> ServingState | None:
        if record is None or callable(record):
            record = record() if callable(record) else self._read(name)
        if record is None:
            self._records.pop(name, None)
        else:
            self._records[name] = record
        current = self._applied.get(name)
        if record is None:
            if current is not None:
                self._undeploy(name)
            return None
        if current is not None and not self.platform.runtime.ready(name):
            current = None  # taken down behind our back (or never came up): bring it up again
            self._applied.pop(name, None)
        if current is not None and same_spec(current, record):
            self._applied[name] = record
            state = self._state(record, "ready")
            self._report(state)
            return state
        if not raise_errors and self._failed.get(name) == record.generation:
            return None  # this generation already failed here; a new desired state is needed to try again
        try:
            # The backend, not the checked registry verb: converging is the platform's own work, not a caller's.
            version = self.platform.registry_backend.resolve(ModelRef(record.model, version=record.version))
            self.platform.runtime.deploy(record, self.platform.bundle_source(version))
        except Exception as exc:
            self._failed[name] = record.generation
            message = f"{type(exc).__name__}: {exc}"[:1000]
            state = self._state(record, "failed", message)
            if current is not None:
                # The previous version keeps serving here; say so, with the failure.
                state = attrs.evolve(self._state(current, "ready"), message=f"converging to generation "
                                     f"{record.generation} failed: {message}")
            self._report(state)
            if raise_errors:
                raise
            log.error("could not converge deployment", deployment=name, generation=record.generation,
                      error=message)
            return state
        self._failed.pop(name, None)
        self._applied[name] = record
        state = self._state(record, "ready")
        self._report(state)
        return state

    def _undeploy(self, name: str) -> None:
        try:
            self.platform.runtime.undeploy(name)
        except NotFound:
            pass
        self._applied.pop(name, None)
        self._failed.pop(name, None)
        self._forget(name)

    def converge_all(self, *, force: bool = False) -> list[ServingState]:
        """Converge every deployment whose record changed since the last pass (all of them with ``force``).

        One cheap read of the revision when nothing changed. Returns the reports of the deployments acted on.
        """
        backend = self._backend
        revision = backend.deployments_revision()
        if not force and revision == self._seen_revision:
            return []
        records = {d.name: d for d in backend.list_deployments()}
        for name in set(self._records) - set(records):
            self._records.pop(name, None)
        self._records.update(records)
        reports: list[ServingState] = []
        for name in sorted(set(records) | set(self._applied)):
            record = records.get(name)
            if record is not None and not force:
                current = self._applied.get(name)
                if current is not None and current.generation == record.generation:
                    continue  # nothing new for this one (a state-only change)
            report = self.converge(name, functools.partial(self._read, name))  # re-read under the lock
            if report is not None:
                reports.append(report)
        self._seen_revision = revision
        if force:
            self.converged_once = True
        return reports

    def readiness(self) -> tuple[list[str], list[str]]:
        """``(waiting, failed)`` deployment names, from memory: recorded but not served here yet, and recorded
        but failed here (reported, never waited for)."""
        waiting, failed = [], []
        runtime = self.platform.runtime
        for name, record in sorted(self._records.items()):
            if self._failed.get(name) == record.generation:
                failed.append(name)
            elif not runtime.ready(name):
                waiting.append(name)
        return waiting, failed

    def _read(self, name: str) -> Deployment | None:
        try:
            return self._backend.get_deployment(name)
        except NotFound:
            return None

    # ------------------------------------------------------------------------------------------- reports
    def _state(self, record: Deployment, state: str, message: str = "") -> ServingState:
        return ServingState(process=self.process, deployment=record.name, host=socket.gethostname(),
                            pid=os.getpid(), model=record.model, version=record.version,
                            generation=record.generation, state=state,  # type: ignore[arg-type]
                            message=message, seen_at=utcnow())

    def _report(self, state: ServingState) -> None:
        try:
            self._backend.report_serving(self.process, [state])
        except ModelyardError as exc:  # a report is informative: serving goes on without it
            log.warning("could not write the serving report", deployment=state.deployment, error=str(exc))

    def _forget(self, name: str) -> None:
        try:
            self._backend.forget_serving(self.process, name)
        except ModelyardError as exc:
            log.warning("could not remove the serving report", deployment=name, error=str(exc))

    def reports(self, name: str) -> list[ServingState]:
        """Every live process's report for ``name`` (processes whose heartbeat went stale are left out)."""
        horizon = max(_STALE_MIN_S, _STALE_INTERVALS * self.interval_s, 3 * _HEARTBEAT_S)
        now = utcnow()
        return [s for s in self._backend.list_serving(name) if (now - s.seen_at).total_seconds() <= horizon]

    # ------------------------------------------------------------------------------------------- background
    def start(self, interval_s: float = 1.0) -> None:
        """Poll the registry every ``interval_s`` seconds in a daemon thread, converging on change (idempotent)."""
        if self._thread is not None:
            return
        self.interval_s = interval_s
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="modelyard-reconcile", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()

    def poll(self) -> None:
        """One pass of the background loop: converge what changed, heartbeat now and then. Never raises."""
        try:
            self.converge_all()
            now = time.monotonic()
            if self._applied and now - self._last_heartbeat >= _HEARTBEAT_S:
                self._backend.touch_serving(self.process)
                self._last_heartbeat = now
        except Exception:
            log.error("reconcile pass failed", exc_info=True)

    def stop(self) -> None:
        """Stop polling and withdraw this process's reports (it serves nothing once the runtime closes)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(5.0, 2 * self.interval_s))
        if self._applied:
            try:
                self._backend.forget_serving(self.process)
            except Exception:
                log.warning("could not withdraw the serving reports", exc_info=True)
        self._applied.clear()


__all__ = ["Reconciler", "process_id", "same_spec"]
