"""The embedded ``local`` runtime: every deployment served in this process, from one shared thread pool.

Per deployment there is an entry holding the version's input adapter (built once per deploy), the loaded model
and a dispatcher from :mod:`modelyard_plugins.local.batching` (dynamic batching when the deployment asks for it,
else one model call per request). A request is looked up once, checked once against the signature of the version
that will run it, and answered with a :class:`~modelyard.types.Prediction` naming that version. Properties the
platform relies on:

* ``deploy`` returns only after the new model loaded and answered a warm-up prediction; a redeploy keeps serving
  the old version until then, swaps atomically, then drains the old dispatcher and closes the old model. Requests
  that raced the swap are retried on the new deployment (checked against the new version's signature), so
  callers see no error in between.
* With a memory budget, loading a bundle first unloads the least-recently-used *idle* deployments' models (their
  records stay, and the next request reloads them lazily); sizes are estimated by artifact size.
* Nothing here does I/O per request. ``predict`` is async only: blocking callers come through the Platform's sync
  facade, whose per-thread event loops share the same queues and batches as the server's loop.
* Bundles arrive as plain :class:`~modelyard.hookspecs.runtime.BundleSource` records and are loaded through the
  platform's :class:`~modelyard.hookspecs.runtime.Loader` (``ctx.services["loader"]``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import numpy as np
import structlog
from modelyard.bundles import InputAdapter, sample_inputs
from modelyard.errors import BuildError, ModelyardError, NotFound, Unavailable
from modelyard.hookspecs.builder import LoadedModel
from modelyard.hookspecs.runtime import Loader
from modelyard.providers import ProviderContext
from modelyard.types import BundleSource, Deployment, Prediction

from modelyard_plugins.local.batching import BatchingDispatcher, DirectDispatcher, DispatcherClosed

log = structlog.get_logger(__name__)

# How long retiring a deployment waits for its accepted requests before giving up on a clean close.
_DRAIN_TIMEOUT_S = 30.0
_MIB = 1024 * 1024


def _default_threads() -> int:
    return os.cpu_count() or 1


@attrs.frozen(kw_only=True)
class LocalRuntimeConfig:
    """The ``[runtime]`` section when ``use = "local"``.

    Attributes:
        threads: worker threads shared by every deployment (default: the number of CPUs).
        max_queue: requests allowed to wait per deployment before new ones get 429 Overloaded.
        max_concurrency: model calls (or batches) of one deployment running at once (default: ``threads``).
        memory_budget_mb: unload least-recently-used idle models to stay under this many MiB of artifacts
            (``None``: no budget).
        device: passed to the builder's ``load`` as ``options["device"]`` (e.g. ``"cuda:0"`` for torch models).
        inline_below_ms: without batching, models whose calls measure under this many milliseconds run on the
            caller's event loop instead of a worker thread (the thread hop costs more than such a model);
            ``0`` always uses the worker threads.
    """

    threads: int = attrs.field(factory=_default_threads, validator=attrs.validators.ge(1))
    max_queue: int = attrs.field(default=256, validator=attrs.validators.ge(1))
    max_concurrency: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(1))
    )
    memory_budget_mb: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(1))
    )
    device: str = "cpu"
    inline_below_ms: float = attrs.field(default=0.2, validator=attrs.validators.ge(0))


class _Retired(Exception):
    """Internal: the deployment was replaced or removed before this request touched its model; retry."""


def _as_arrays(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The check of a version without an input signature: array-likes become arrays, the model checks the rest."""
    for value in inputs.values():
        if type(value) is not np.ndarray:
            return {k: np.asarray(v) for k, v in inputs.items()}
    return inputs


@attrs.define(eq=False)
class _Entry:
    """One deployment as served now: its record, the check of its version's inputs, its model (``None`` while
    unloaded) and its dispatcher.

    ``lock`` guards the mutable fields; ``changed`` wakes whoever waits for a load to finish or for the model to
    fall idle (``waiters`` of them: with none, a call ends without touching the condition). ``users`` counts
    model calls in progress; a model is closed only when ``users`` is 0.
    """

    deployment: Deployment
    source: BundleSource
    size: int
    reload: Callable[[_Entry], LoadedModel]
    check: Callable[[Mapping[str, Any]], Mapping[str, Any]] = _as_arrays
    model: LoadedModel | None = None
    dispatcher: DirectDispatcher | BatchingDispatcher = attrs.field(default=None)
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    changed: threading.Condition = attrs.field(init=False)
    users: int = 0
    waiters: int = 0
    loading: bool = False
    retired: bool = False
    loads: int = 1
    last_used: float = attrs.field(factory=time.monotonic)

    def __attrs_post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    # ---- model access (any thread)
    def acquire(self) -> LoadedModel:
        """The model, loading it first if it was unloaded; the caller must :meth:`release` it."""
        with self.lock:
            while True:
                model = self.model
                if model is not None:
                    self.users += 1
                    self.last_used = time.monotonic()
                    return model
                if self.retired:
                    raise _Retired
                if not self.loading:
                    self.loading = True
                    break
                self.wait()
        try:
            model = self.reload(self)
        except BaseException:
            with self.lock:
                self.loading = False
                self.changed.notify_all()
            raise
        with self.lock:
            self.loading = False
            self.model = model
            self.loads += 1
            self.users += 1
            self.last_used = time.monotonic()
            self.changed.notify_all()
        return model

    def release(self) -> None:
        """End a model call begun with :meth:`acquire`."""
        with self.lock:
            self.users -= 1
            if self.users == 0 and self.waiters:
                self.changed.notify_all()

    def wait(self, timeout: float | None = None) -> None:
        """Under ``lock``: wait for ``changed``."""
        self.waiters += 1
        try:
            self.changed.wait(timeout)
        finally:
            self.waiters -= 1

    def run(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        """One model call; the dispatcher's ``predict`` (a worker thread, or the caller's loop when inline)."""
        model = self.acquire()
        try:
            return model.predict(inputs)
        finally:
            self.release()

    def idle(self) -> bool:
        """No model call running or about to run (a heuristic for eviction; ``users`` is the hard guard)."""
        d = self.dispatcher
        return self.users == 0 and not self.loading and d.queue_depth == 0 and d.in_flight == 0

    def status(self) -> dict[str, Any]:
        """The row ``Runtime.status`` shows for this deployment."""
        stats = self.dispatcher.stats()
        dep = self.deployment
        if self.loading:
            state = "loading"
        elif self.model is None:
            state = "unloaded"  # evicted under the memory budget; reloads on the next request
        else:
            state = "ready"
        return {
            "state": state,
            "model": dep.model,
            "version": dep.version,
            "replicas": 1,
            "batching": attrs.asdict(dep.batching) if dep.batching else None,
            "queue_depth": stats.queue_depth,
            "in_flight": stats.in_flight,
            "requests": stats.requests,
            "batches": stats.batches,  # model calls
            "rows": stats.rows,
            "rejected": stats.rejected,
            "failed": stats.failed,
            "loads": self.loads,
            "size_bytes": self.size,
        }


@attrs.define(eq=False)
class LocalRuntime:
    """Serves deployments in this process; implements :class:`modelyard.hookspecs.runtime.Runtime`.

    Build it with :meth:`from_config` (or directly with a config and a loader). Thread-safe: ``predict`` from any
    event loop (several at once), ``deploy``/``undeploy`` from any thread.
    """

    config: LocalRuntimeConfig = attrs.field(factory=LocalRuntimeConfig)
    loader: Loader | None = None
    _executor: ThreadPoolExecutor = attrs.field(init=False)
    _entries: dict[str, _Entry] = attrs.field(init=False, factory=dict)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _name_locks: dict[str, threading.Lock] = attrs.field(init=False, factory=dict)
    _pending_bytes: int = attrs.field(init=False, default=0)
    _retiring: set[threading.Thread] = attrs.field(init=False, factory=set)
    _closed: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        # Threads start lazily, on the first submitted call: no work at construction.
        self._executor = ThreadPoolExecutor(max_workers=self.config.threads, thread_name_prefix="modelyard-local")

    @classmethod
    def from_config(cls, config: LocalRuntimeConfig, ctx: ProviderContext | None = None) -> LocalRuntime:
        """The provider factory: ``[runtime] use = "local"``; the loader is the platform's (``ctx.services``)."""
        services = getattr(ctx, "services", None) or {}
        return cls(config, loader=services.get("loader"))

    @property
    def _budget(self) -> int | None:
        mb = self.config.memory_budget_mb
        return None if mb is None else mb * _MIB

    # ------------------------------------------------------------------------------------------- deploy
    def deploy(self, deployment: Deployment, source: BundleSource) -> None:
        """Load ``source``, warm it up, then swap it in under ``deployment.name``.

        The previous deployment of that name (if any) keeps serving until the new one answered its warm-up
        prediction, and is drained and closed after the swap. On failure nothing changes and a
        :class:`~modelyard.errors.ModelyardError` says why (:class:`~modelyard.errors.BuildError` when the bundle
        does not load or predict, :class:`~modelyard.errors.Unavailable` when it cannot be fetched).
        """
        self._check_open()
        name = deployment.name
        with self._lock:
            name_lock = self._name_locks.setdefault(name, threading.Lock())
        with name_lock:  # one deploy per name at a time; different names load in parallel
            size = max(0, int(source.size or 0))
            self._reserve(size, exclude=None, pending=True)
            try:
                entry = self._prepare(deployment, source, size)
            except BaseException:
                with self._lock:
                    self._pending_bytes -= size
                raise
            with self._lock:
                # The new model's bytes stop being "pending" as it becomes an entry: one step, no gap.
                self._pending_bytes -= size
                if self._closed:
                    closing = True
                else:
                    closing = False
                    old = self._entries.get(name)
                    self._entries[name] = entry
            if closing:
                self._retire(entry)
                raise Unavailable("the local runtime is closed")
        log.debug("local deployment ready", deployment=name, model=deployment.model, version=deployment.version,
                  replaced=old.deployment.version if old else None)
        if old is not None:
            self._retire_soon(old)

    def _prepare(self, deployment: Deployment, source: BundleSource, size: int) -> _Entry:
        """Load and warm up a new entry, not yet reachable by name."""
        name = deployment.name
        concurrency = self.config.max_concurrency or self.config.threads
        entry = _Entry(deployment=deployment, source=source, size=size, reload=self._reload)
        model = self._load(entry)
        try:
            signature = source.signature if source.signature.inputs else getattr(model, "signature", None)
            if signature is not None and signature.inputs:
                # The one check of this version's inputs, built once: every request goes through it.
                entry.check = InputAdapter(signature.inputs)
                model.predict(sample_inputs(signature, batch=1))
        except Exception as exc:
            _close_model(model, name)
            raise BuildError(f"deployment {name!r}: {source.model}:{source.version} failed its warm-up "
                             f"prediction: {type(exc).__name__}: {exc}") from exc
        entry.model = model
        if deployment.batching is not None:
            entry.dispatcher = BatchingDispatcher(
                entry.run, self._executor, deployment=name,
                max_batch_size=deployment.batching.max_batch_size, max_wait_ms=deployment.batching.max_wait_ms,
                max_queue=self.config.max_queue, max_concurrency=concurrency,
                wait_when_idle=deployment.batching.wait_when_idle)
        else:
            entry.dispatcher = DirectDispatcher(entry.run, self._executor, deployment=name,
                                                max_concurrency=concurrency, max_queue=self.config.max_queue,
                                                inline_below_s=self.config.inline_below_ms / 1000)
        return entry

    def _load(self, entry: _Entry) -> LoadedModel:
        """Fetch and load an entry's bundle through the loader (no memory accounting; callers reserve first)."""
        source = entry.source
        name = entry.deployment.name
        what = f"{source.model}:{source.version}"
        loader = self.loader
        if loader is None:
            raise Unavailable(f"deployment {name!r}: this local runtime has no loader (build it through the "
                              "platform, or pass loader=)")
        try:
            path = loader.fetch(source)
        except ModelyardError:
            raise
        except Exception as exc:
            raise Unavailable(f"deployment {name!r}: cannot fetch {what} (sha256:{source.digest[:12]}): "
                              f"{type(exc).__name__}: {exc}") from exc
        options = {"device": self.config.device, **entry.deployment.options}
        try:
            return loader.load(source, options, path=path)
        except ModelyardError:
            raise
        except Exception as exc:
            raise BuildError(f"deployment {name!r}: cannot load {what} ({source.flavor}): "
                             f"{type(exc).__name__}: {exc}") from exc

    def _reload(self, entry: _Entry) -> LoadedModel:
        # A request found the model unloaded (LRU): load it again, making room first. No warm-up: the request
        # that triggered the load is the first prediction anyway.
        self._reserve(entry.size, exclude=entry, pending=False)
        started = time.perf_counter()
        model = self._load(entry)
        log.info("local deployment reloaded", deployment=entry.deployment.name,
                 seconds=round(time.perf_counter() - started, 3))
        return model

    def _reserve(self, size: int, *, exclude: _Entry | None, pending: bool) -> None:
        """Unload least-recently-used idle models until ``size`` more bytes fit the budget (best effort)."""
        budget = self._budget
        if budget is None:
            return
        evicted: list[tuple[str, LoadedModel]] = []
        with self._lock:
            entries = [e for e in self._entries.values() if e is not exclude]
            used = self._pending_bytes + sum(e.size for e in entries if e.model is not None or e.loading)
            for candidate in sorted(entries, key=lambda e: e.last_used):
                if used + size <= budget:
                    break
                with candidate.lock:
                    if candidate.model is None or not candidate.idle():
                        continue
                    evicted.append((candidate.deployment.name, candidate.model))
                    candidate.model = None
                    candidate.dispatcher.reset_timing()  # its next call reloads: keep it off the loop
                    used -= candidate.size
            if pending:
                self._pending_bytes += size
        if used + size > budget:
            log.warning("local runtime memory budget exceeded; no idle model left to unload",
                        budget_mb=self.config.memory_budget_mb, needed_mb=round((used + size) / _MIB, 1))
        for name, model in evicted:
            log.info("local deployment unloaded (memory budget)", deployment=name)
            _close_model(model, name)

    # ------------------------------------------------------------------------------------------- retire
    def _retire_soon(self, entry: _Entry) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._retire(entry)
            return
        # Called from a thread running an event loop: requests of this loop waiting for a slot of the old
        # deployment are answered on this very loop, so draining here could wait on ourselves; drain from a
        # helper thread.
        thread = threading.Thread(target=self._retire, args=(entry,), name="modelyard-retire", daemon=True)
        with self._lock:
            self._retiring.add(thread)
        thread.start()

    def _retire(self, entry: _Entry) -> None:
        """Drain and close a deployment that is no longer reachable by name."""
        try:
            self._drain_and_close(entry)
        finally:
            with self._lock:
                self._retiring.discard(threading.current_thread())

    def _drain_and_close(self, entry: _Entry) -> None:
        name = entry.deployment.name
        try:
            entry.dispatcher.close_sync(_DRAIN_TIMEOUT_S)
        except TimeoutError:
            log.warning("local deployment did not drain in time", deployment=name, timeout_s=_DRAIN_TIMEOUT_S)
        except Exception:
            log.error("error draining local deployment", deployment=name, exc_info=True)
        deadline = time.monotonic() + _DRAIN_TIMEOUT_S
        with entry.lock:
            entry.retired = True
            while entry.users or entry.loading:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.error("local deployment still busy; leaving its model open", deployment=name)
                    return
                entry.wait(left)
            model, entry.model = entry.model, None
        if model is not None:
            _close_model(model, name)

    # ------------------------------------------------------------------------------------------- serving
    async def predict(self, name: str, inputs: Mapping[str, Any], *, version: int | None = None) -> Prediction:
        """Predict with the deployment ``name`` from any event loop; the answer names the version that ran.

        One lookup, one check of ``inputs`` against that version's signature (names, dtypes — converted when no
        information is lost —, ranks and fixed dimensions), then the deployment's dispatcher: the model runs on
        a worker thread, inline on this loop when it is tiny, or in a batch with concurrent requests. Raises
        :class:`~modelyard.errors.NotFound` for an unknown deployment — or, given ``version``, when the
        deployment serves another version (checked before the model runs) —, :class:`~modelyard.errors.InvalidInput`,
        and :class:`~modelyard.errors.Overloaded` at once (never blocking the loop) when the queue is full.
        """
        started = time.perf_counter()
        entry = self._entries.get(name)
        if entry is None:
            raise NotFound(f"deployment {name!r} is not deployed on the local runtime")
        while True:
            if version is not None and entry.deployment.version != version:
                raise NotFound(f"model {name!r} serves version {entry.deployment.version}, not version "
                               f"'{version}'")
            feed = entry.check(inputs)  # arrays from here on
            try:
                outputs, model_s = await entry.dispatcher.submit(feed)
                break
            except (DispatcherClosed, _Retired):
                # Replaced or removed while we held the old entry: retry on the current one, checked against
                # its version (or NotFound).
                current = self._entries.get(name)
                if current is entry:
                    raise Unavailable(f"deployment {name!r} is shutting down") from None
                if current is None:
                    raise NotFound(f"deployment {name!r} is not deployed on the local runtime") from None
                entry = current
        dep = entry.deployment
        rows = 1
        for first in feed.values():
            shape = first.shape
            rows = shape[0] if shape else 1
            break
        elapsed = time.perf_counter() - started
        return Prediction(outputs=outputs, model=dep.model, version=dep.version, rows=rows,
                          queue_s=elapsed - model_s if elapsed > model_s else 0.0, model_s=model_s)

    def ready(self, name: str) -> bool:
        """Whether ``name`` answers predictions now (an unloaded model counts: it reloads on demand)."""
        entry = self._entries.get(name)
        return entry is not None and not entry.retired

    def status(self) -> dict[str, dict[str, Any]]:
        """Per deployment: state (``ready``, ``loading``, ``unloaded``), model, version, queue depth, in-flight
        count, request counters, batching settings and loads."""
        with self._lock:
            entries = dict(self._entries)
        return {name: entry.status() for name, entry in sorted(entries.items())}

    def undeploy(self, name: str) -> None:
        """Take ``name`` down: new requests get NotFound, accepted ones finish, then the model is closed."""
        with self._lock:
            entry = self._entries.pop(name, None)
        if entry is None:
            raise NotFound(f"deployment {name!r} is not deployed on the local runtime")
        self._retire_soon(entry)

    def close(self) -> None:
        """Take every deployment down (draining accepted requests) and stop the thread pool. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            self._retire_soon(entry)
        with self._lock:
            retiring = list(self._retiring)
        for thread in retiring:
            thread.join(_DRAIN_TIMEOUT_S)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("the local runtime is closed")


def _close_model(model: LoadedModel, name: str) -> None:
    try:
        model.close()
    except Exception:
        log.error("error closing model", deployment=name, exc_info=True)


__all__ = ["LocalRuntime", "LocalRuntimeConfig"]
