"""Request scheduling for the embedded in-process runtime: dynamic batching, bounded queues, concurrency limits.

A deployed model is a blocking callable ``predict(inputs) -> outputs`` over ``dict[str, np.ndarray]`` with the batch
on axis 0. The server is asyncio, so each deployment gets a *dispatcher* that turns ``await submit(inputs)`` into
calls on a :class:`concurrent.futures.ThreadPoolExecutor` shared by every deployment:

* :class:`DirectDispatcher`: one model call per request, at most ``max_concurrency`` at once, at most
  ``max_queue`` callers waiting for a slot;
* :class:`BatchingDispatcher`: concurrent requests with the same input layout are concatenated along axis 0
  into one call of at most ``max_batch_size`` rows, flushed when full or ``max_wait_ms`` after the first request
  of the batch arrived; the outputs are sliced back so every caller gets exactly its own rows.

Both raise :class:`Overloaded` (HTTP 429 with Retry-After) at once, never blocking, when their queue is full, and
offer :meth:`~DirectDispatcher.submit_sync` for callers without an event loop.

This is the hottest path of the platform, which shapes the code: per request there is exactly one hop to a worker
thread and one back (``executor.submit`` + ``call_soon_threadsafe``), no task creation, no logging, no locks; the
waiting caller awaits a bare loop future. All scheduling state belongs to one event loop (the one that first
used the dispatcher) and is touched only from it; other loops and threads are bridged to that loop.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import CancelledError as ConcurrentCancelledError
from concurrent.futures import Executor
from concurrent.futures import Future as ConcurrentFuture
from typing import Any

import attrs
import numpy as np
from modelyard import errors

__all__ = [
    "BatchingDispatcher",
    "DirectDispatcher",
    "DispatcherClosed",
    "DispatcherStats",
    "Overloaded",
    "PredictFn",
]

PredictFn = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
"""A deployed model: named arrays in, named arrays out, batch on axis 0 of every array."""

_MIN_RETRY_AFTER = 0.05
_MAX_RETRY_AFTER = 30.0
# Weight of the newest sample in the service-time average: reacts within a handful of calls, yet one slow
# outlier does not make every rejected client back off for long.
_EWMA_ALPHA = 0.2
# How often a blocked submit_sync checks that the loop holding its request still exists.
_LOOP_CHECK_S = 0.25


# --------------------------------------------------------------------------------------------- errors
class Overloaded(errors.Overloaded):
    """The deployment's queue is full; raised at once from ``submit`` (never after waiting).

    It is a :class:`modelyard.errors.Overloaded` (status 429), so the server renders it like every other
    back-pressure error, with ``retry_after`` (seconds, within [0.05, 30]) as the Retry-After header. The estimate
    is the recent model service time times the number of calls queued ahead.
    """

    def __init__(self, deployment: str, retry_after: float, queue_depth: int = 0) -> None:
        super().__init__(
            f"deployment {deployment!r} is overloaded ({queue_depth} requests queued); "
            f"retry after {retry_after:.2f}s",
            retry_after=retry_after,
            deployment=deployment,
            queue_depth=queue_depth,
        )
        self.deployment = deployment
        self.queue_depth = queue_depth

    def __reduce__(self) -> tuple[Any, ...]:
        # The constructor's arguments are not the message, so the default pickling (cls(*args)) would fail.
        return (type(self), (self.deployment, self.retry_after, self.queue_depth))


class DispatcherClosed(errors.Unavailable):
    """The dispatcher was closed: ``submit`` after ``close()``, or a queued request dropped by ``close(drain=False)``.

    A :class:`modelyard.errors.Unavailable` (status 503): the deployment is going away, not the request's fault.
    """

    def __init__(self, deployment: str) -> None:
        super().__init__(
            f"deployment {deployment!r} is shutting down and accepts no more requests", deployment=deployment
        )
        self.deployment = deployment

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.deployment,))


def _clamp_retry(seconds: float) -> float:
    return min(_MAX_RETRY_AFTER, max(_MIN_RETRY_AFTER, seconds))


def _call_soon_threadsafe(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object
) -> None:
    # Runs in a worker thread when a model call ends. If the loop that asked is gone (asyncio.run() returned while
    # the call was running) nobody is waiting any more; without this guard concurrent.futures would log the
    # RuntimeError as a failed callback.
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        pass


def _run_loop_forever(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


# --------------------------------------------------------------------------------------------- stats
@attrs.frozen
class DispatcherStats:
    """A snapshot of one dispatcher's gauges and counters (for metrics and ``Runtime.status``).

    ``queue_depth``: requests accepted but not yet handed to the model; ``in_flight``: model calls running (or
    waiting in the shared executor); ``requests``: requests accepted since creation; ``batches``: model calls
    started; ``rows``: rows sent to the model; ``rejected``: requests refused with :class:`Overloaded`;
    ``failed``: requests answered with an error (model exception, bad outputs, closed).
    """

    queue_depth: int
    in_flight: int
    requests: int
    batches: int
    rows: int
    rejected: int
    failed: int


# --------------------------------------------------------------------------------------------- common base
# eq=False everywhere: dispatchers and batches are identities (kept in dicts, compared with `is`), and a generated
# __eq__ would compare queues element by element. No attrs validators: with them attrs installs a Python-level
# __setattr__ that would tax every counter increment on the hot path, so arguments are checked in post-init.
@attrs.define(eq=False)
class _Dispatcher:
    """Loop binding, the sync bridge, close() and stats, shared by both dispatchers."""

    predict: PredictFn
    executor: Executor
    deployment: str = attrs.field(default="default", kw_only=True)

    requests: int = attrs.field(init=False, default=0)
    batches: int = attrs.field(init=False, default=0)
    rows: int = attrs.field(init=False, default=0)
    rejected: int = attrs.field(init=False, default=0)
    failed: int = attrs.field(init=False, default=0)

    _loop: asyncio.AbstractEventLoop | None = attrs.field(init=False, default=None, repr=False)
    _closed: bool = attrs.field(init=False, default=False, repr=False)
    _in_flight: int = attrs.field(init=False, default=0, repr=False)
    _service_time: float = attrs.field(init=False, default=0.0, repr=False)
    _idle_waiters: list[asyncio.Future[None]] = attrs.field(init=False, factory=list, repr=False)
    _bind_lock: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False)
    _private_loop: asyncio.AbstractEventLoop | None = attrs.field(init=False, default=None, repr=False)
    _private_thread: threading.Thread | None = attrs.field(init=False, default=None, repr=False)

    # ---- public gauges
    @property
    def in_flight(self) -> int:
        """Model calls started and not yet answered (including ones waiting for a thread of the shared executor)."""
        return self._in_flight

    @property
    def queue_depth(self) -> int:
        """Requests accepted but not yet handed to the model."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has begun; a closed dispatcher refuses new requests."""
        return self._closed

    def stats(self) -> DispatcherStats:
        """A consistent snapshot of gauges and counters (cheap: reads a few ints)."""
        return DispatcherStats(
            queue_depth=self.queue_depth,
            in_flight=self._in_flight,
            requests=self.requests,
            batches=self.batches,
            rows=self.rows,
            rejected=self.rejected,
            failed=self.failed,
        )

    # ---- subclass hooks
    def _is_idle(self) -> bool:
        raise NotImplementedError

    def _reset_pending(self) -> None:
        raise NotImplementedError

    async def _shutdown(self, drain: bool) -> None:
        raise NotImplementedError

    # ---- shared helpers
    def reset_timing(self) -> None:
        """Forget the measured call time (e.g. after the model was unloaded: the next call reloads it and must
        not run inline on the event loop)."""
        self._service_time = 0.0

    def _observe(self, elapsed: float) -> None:
        # Exponentially weighted service time: Retry-After estimates and DirectDispatcher's inline decision.
        st = self._service_time
        self._service_time = elapsed if st == 0.0 else st + _EWMA_ALPHA * (elapsed - st)

    def _notify_idle(self) -> None:
        # close() waits on these; called whenever the closing dispatcher may have become idle.
        if self._idle_waiters and self._is_idle():
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _wait_idle(self) -> None:
        if not self._is_idle():
            waiter = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            await waiter

    # ---- event-loop affinity
    def _adopt(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Slow path of the loop check in ``submit``: may ``loop`` run the dispatcher (True), or must the caller be
        bridged to the bound loop (False)?

        The queues, timers and futures belong to one loop. A dispatcher is bound to the first loop that uses it and
        re-bound when that loop has closed (``asyncio.run`` returned) or stopped while idle. While the bound loop runs
        in another thread, callers from other loops are bridged to it, so all callers still share one queue.
        """
        with self._bind_lock:
            current = self._loop
            if current is loop:
                return True
            if current is None or current.is_closed():
                self._rebind(loop)
                return True
            # The private loop counts as running even before its thread has started it.
            if current.is_running() or current is self._private_loop:
                return False
            if self._is_idle():
                self._rebind(loop)
                return True
            raise RuntimeError(
                f"deployment {self.deployment!r}: the dispatcher is bound to another event loop, which is stopped "
                "with requests pending"
            )

    def _rebind(self, loop: asyncio.AbstractEventLoop) -> None:
        # Whatever is left belongs to a dead loop: its futures can never be answered, its timers never fire, and
        # completions of its model calls go to that loop (and are dropped there), so start from clean state.
        self._loop = loop
        self._reset_pending()

    async def _bridge(self, coro: Any) -> Any:
        loop = self._loop
        assert loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def _sync_loop(self) -> asyncio.AbstractEventLoop:
        """The loop ``submit_sync`` runs on: the bound loop if it is running (in another thread), else the private
        background loop, started on first need."""
        with self._bind_lock:
            current = self._loop
            if current is not None and not current.is_closed():
                if current.is_running() or current is self._private_loop:
                    return current
                if not self._is_idle():
                    raise RuntimeError(
                        f"deployment {self.deployment!r}: the dispatcher is bound to an event loop that is stopped "
                        "with requests pending"
                    )
            loop = self._private_loop
            if loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_run_loop_forever,
                    args=(loop,),
                    name=f"modelyard-dispatch-{self.deployment}",
                    daemon=True,
                )
                thread.start()
                self._private_loop, self._private_thread = loop, thread
            self._rebind(loop)
            return loop

    @staticmethod
    def _refuse_running_loop(method: str) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        # Blocking here would freeze the very loop that has to answer.
        raise RuntimeError(
            f"{method}() cannot be called from a thread running an event loop; await the async method"
        )

    def _stop_private_loop(self) -> None:
        with self._bind_lock:
            loop, thread = self._private_loop, self._private_thread
            self._private_loop = self._private_thread = None
        if loop is None or thread is None:
            return
        _call_soon_threadsafe(loop, loop.stop)
        if thread is not threading.current_thread():
            thread.join(timeout=5.0)

    # ---- public sync API and close
    def submit_sync(
        self, inputs: Mapping[str, np.ndarray], timeout: float | None = None
    ) -> dict[str, np.ndarray]:
        """Blocking ``submit`` for library use, from any thread that is not running an event loop.

        The request joins the same queues as async callers: it is scheduled on the dispatcher's loop when that loop
        runs in another thread (the server's), and otherwise on a private daemon thread running an event loop that
        the dispatcher starts on first use and stops in ``close()``/``close_sync()``. Raises what ``submit`` raises;
        after ``timeout`` seconds the request is cancelled (withdrawn from its batch if not yet sent to the model)
        and :class:`TimeoutError` is raised. If the loop it was bridged to ends first (``asyncio.run`` returned in
        that loop's thread), :class:`concurrent.futures.CancelledError` is raised: the request was dropped and may
        be submitted again, which binds the dispatcher to a live loop.
        """
        self._refuse_running_loop("submit_sync")
        if self._closed:
            raise DispatcherClosed(self.deployment)
        loop = self._sync_loop()
        future = asyncio.run_coroutine_threadsafe(self.submit(inputs), loop)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # Wait in slices: if the loop is torn down with the request on it (asyncio.run returning in another
            # thread schedules nothing more), its future is never settled and an unbounded wait would hang.
            left = _LOOP_CHECK_S if deadline is None else min(_LOOP_CHECK_S, max(0.0, deadline - time.monotonic()))
            try:
                return future.result(left)
            except TimeoutError:
                if loop.is_closed() and not future.done():
                    future.cancel()
                    raise ConcurrentCancelledError(
                        f"deployment {self.deployment!r}: the event loop running the request was closed"
                    ) from None
                if deadline is not None and time.monotonic() >= deadline:
                    future.cancel()
                    raise TimeoutError(
                        f"deployment {self.deployment!r}: no prediction within {timeout}s"
                    ) from None

    async def submit(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Predict ``inputs``; see the subclasses."""
        raise NotImplementedError

    async def close(self, *, drain: bool = True) -> None:
        """Stop accepting requests, settle the pending ones, and stop the private loop thread if one was started.

        New ``submit`` calls raise :class:`DispatcherClosed` from the moment this is called. With ``drain`` (the
        default) every accepted request is still run, batches are flushed at once without waiting for
        ``max_wait_ms``; with ``drain=False`` queued requests fail with :class:`DispatcherClosed` and only model calls
        already running are awaited. Returns when nothing is queued or running. Idempotent.
        """
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._closed = True
        elif self._loop is loop or self._adopt(loop):
            await self._shutdown(drain)
        else:
            await self._bridge(self._shutdown(drain))
        if self._private_loop is not None and self._private_loop is not loop:
            await asyncio.to_thread(self._stop_private_loop)

    def close_sync(self, timeout: float | None = None, *, drain: bool = True) -> None:
        """``close()`` for callers without an event loop (library use next to ``submit_sync``).

        Raises :class:`TimeoutError` if pending requests are not settled within ``timeout`` seconds (the dispatcher
        stays closed).
        """
        self._refuse_running_loop("close_sync")
        loop = self._loop
        if loop is not None and not loop.is_closed() and (loop.is_running() or loop is self._private_loop):
            asyncio.run_coroutine_threadsafe(self._shutdown(drain), loop).result(timeout)
        else:
            self._closed = True
        self._stop_private_loop()


# --------------------------------------------------------------------------------------------- direct
@attrs.define(eq=False)
class DirectDispatcher(_Dispatcher):
    """Batching off: one model call per request.

    At most ``max_concurrency`` calls of this deployment run at once; up to ``max_queue`` further callers wait, in
    arrival order, for a slot; the next one gets :class:`Overloaded` at once. Outputs are returned as the model
    produced them.

    Args:
        predict: the model callable; runs in ``executor``.
        executor: the executor shared by all deployments.
        deployment: name used in error messages.
        max_concurrency: model calls of this deployment running at once (>= 1).
        max_queue: callers allowed to wait for a slot (>= 0).
        inline_below_s: when the measured call time is below this (and > 0), call the model on the event loop
            instead of hopping to a worker thread. For tiny models the hop (two thread switches, ~70-90 µs of
            CPU) costs 10x the model itself; a sub-threshold call blocks the loop for less than the hop would.
            Slow calls are timed too, so a model that gets slower moves back to the executor by itself.
            ``0`` (the default) never inlines.
    """

    max_concurrency: int = attrs.field(default=4, kw_only=True)
    max_queue: int = attrs.field(default=64, kw_only=True)
    inline_below_s: float = attrs.field(default=0.0, kw_only=True)
    _waiters: deque[asyncio.Future[None]] = attrs.field(init=False, factory=deque, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {self.max_queue}")

    @property
    def queue_depth(self) -> int:
        """Callers waiting for a concurrency slot."""
        return len(self._waiters)

    def _is_idle(self) -> bool:
        return self._in_flight == 0 and not self._waiters

    def _reset_pending(self) -> None:
        self._waiters.clear()
        self._in_flight = 0
        self._idle_waiters.clear()

    async def submit(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``predict(inputs)`` in the executor once a concurrency slot is free and return its outputs.

        Raises :class:`Overloaded` (at once) when ``max_queue`` callers already wait, :class:`DispatcherClosed`
        after ``close()``, and whatever the model raises. Cancelling the caller withdraws it from the queue; a call
        already running finishes in its thread and keeps its slot until then, so the limit holds for real threads.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop and not self._adopt(loop):
            return await self._bridge(self.submit(inputs))
        if self._closed:
            raise DispatcherClosed(self.deployment)
        if self._in_flight < self.max_concurrency:
            # Slots are handed straight from a finishing call to the next waiter (see _release), so a free slot
            # implies nobody is waiting: taking it cannot jump the queue.
            self._in_flight += 1
        else:
            await self._wait_for_slot(loop)
        self.requests += 1
        self.batches += 1
        try:
            self.rows += len(next(iter(inputs.values())))
        except (StopIteration, TypeError):
            pass

        if 0.0 < self._service_time < self.inline_below_s:
            start = time.perf_counter()
            try:
                outputs = self.predict(inputs)
            except BaseException:
                self.failed += 1
                raise
            finally:
                self._release()
            self._observe(time.perf_counter() - start)
            return outputs

        answer = loop.create_future()
        try:
            work = self.executor.submit(self._call, inputs)
        except BaseException:
            self._release()
            raise
        work.add_done_callback(lambda done: _call_soon_threadsafe(loop, self._complete, answer, done))
        try:
            return await answer
        except asyncio.CancelledError:
            # Only stops a call that has not started; a running one completes and then frees the slot.
            work.cancel()
            raise

    async def _wait_for_slot(self, loop: asyncio.AbstractEventLoop) -> None:
        waiters = self._waiters
        if len(waiters) >= self.max_queue:
            self.rejected += 1
            ahead = len(waiters) / self.max_concurrency + 1
            raise Overloaded(self.deployment, _clamp_retry(self._service_time * ahead), len(waiters))
        waiter = loop.create_future()
        waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.cancelled():
                try:
                    waiters.remove(waiter)
                except ValueError:  # _release already skipped it
                    pass
                if self._closed:
                    self._notify_idle()
            elif waiter.exception() is None:
                # We were handed a slot but got cancelled before running: pass it on.
                self._release()
            raise

    def _call(self, inputs: Mapping[str, np.ndarray]) -> tuple[Mapping[str, np.ndarray], float]:
        # Worker thread.
        start = time.perf_counter()
        outputs = self.predict(inputs)
        return outputs, time.perf_counter() - start

    def _release(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to that waiter; _in_flight stays
                return
        self._in_flight -= 1
        if self._closed:
            self._notify_idle()

    def _complete(self, answer: asyncio.Future[Any], work: ConcurrentFuture[Any]) -> None:
        # Loop thread, once the model call has ended.
        self._release()
        if work.cancelled():
            if not answer.done():
                self.failed += 1
                answer.set_exception(
                    RuntimeError(
                        f"deployment {self.deployment!r}: the executor dropped the call (shut down?)"
                    )
                )
            return
        exc = work.exception()
        if exc is not None:
            self.failed += 1
            if not answer.done():
                answer.set_exception(exc)
            return
        outputs, elapsed = work.result()
        self._observe(elapsed)
        if not answer.done():
            answer.set_result(outputs)

    async def _shutdown(self, drain: bool) -> None:
        self._closed = True
        if not drain:
            waiters, self._waiters = self._waiters, deque()
            for waiter in waiters:
                if not waiter.done():
                    self.failed += 1
                    waiter.set_exception(DispatcherClosed(self.deployment))
        await self._wait_idle()


# --------------------------------------------------------------------------------------------- batching
@attrs.define(eq=False)
class _Batch:
    """Requests with one input layout (``key``) that will share a model call. Parallel lists, not request
    objects, to keep per-request allocation down."""

    key: Hashable
    futures: list[asyncio.Future[Any]] = attrs.field(factory=list)
    inputs: list[Mapping[str, np.ndarray]] = attrs.field(factory=list)
    sizes: list[int] = attrs.field(factory=list)
    rows: int = 0
    timer: asyncio.Handle | None = None
    # queued: in the ready queue, waiting for a concurrency slot (it may still absorb requests while it waits).
    # dispatched: handed to the executor (or failed by close); its lists are frozen from then on, because a
    # worker thread reads them.
    queued: bool = False
    dispatched: bool = False


def _inspect(
    inputs: Mapping[str, np.ndarray], deployment: str
) -> tuple[Mapping[str, np.ndarray], int, Hashable]:
    """Validate one request; return (inputs as arrays, its row count, its layout key).

    Requests batch together only when their keys are equal: same input names, and per name the same dtype and
    the same shape beyond axis 0, so that concatenation can neither fail nor silently cast.
    """
    converted: dict[str, np.ndarray] | None = None
    rows = -1
    layout = []
    for name, value in inputs.items():
        if type(value) is not np.ndarray:
            value = np.asarray(value)
            if converted is None:
                converted = dict(inputs)
            converted[name] = value
        shape = value.shape
        if not shape:
            raise errors.InvalidInput(
                f"deployment {deployment!r}: input {name!r} is a scalar; every input needs the batch on axis 0",
                field=name,
            )
        if rows < 0:
            rows = shape[0]
        elif shape[0] != rows:
            raise errors.InvalidInput(
                f"deployment {deployment!r}: input {name!r} has {shape[0]} rows but the other inputs have {rows}",
                field=name,
            )
        layout.append((name, value.dtype, shape[1:]))
    if rows < 0:
        raise errors.InvalidInput(f"deployment {deployment!r}: the request has no inputs", field="inputs")
    # A single input (the usual case) skips building a frozenset; a tuple never equals a frozenset, so the two
    # kinds of key cannot collide.
    key = layout[0] if len(layout) == 1 else frozenset(layout)
    return (inputs if converted is None else converted), rows, key


@attrs.define(eq=False)
class BatchingDispatcher(_Dispatcher):
    """Dynamic batching: concurrent requests are merged into one model call.

    A batch is flushed when it holds ``max_batch_size`` rows, or ``max_wait_ms`` after its first request arrived,
    whichever comes first (at once when the model is idle, unless ``wait_when_idle``) (``max_wait_ms=0``: on the next loop iteration, merging whatever queued meanwhile). A
    flushed batch runs as soon as fewer than ``max_concurrency`` batches of this deployment are in flight; while it
    waits for a slot it keeps absorbing requests up to ``max_batch_size`` rows, so a busy model gets full batches.
    Inputs are concatenated along axis 0 and every output is sliced back by each request's row count.

    Requests whose input names, dtypes or non-batch dimensions differ go to separate batches. A request that
    does not fit in the open batch flushes it and starts the next; one with ``max_batch_size`` rows or more runs
    alone, unsplit. At most ``max_queue`` requests wait (counted in requests, not rows); the next gets
    :class:`Overloaded` at once.

    Args:
        predict: the model callable; runs in ``executor`` and must accept any batch size up to the largest request
            or ``max_batch_size``, whichever is larger.
        executor: the executor shared by all deployments.
        deployment: name used in error messages.
        max_batch_size: rows per model call (>= 1).
        max_wait_ms: how long the first request of a batch waits for company (>= 0).
        max_queue: requests waiting to be sent to the model (>= 1); keep it at least ``max_batch_size`` rows'
            worth of requests or batches can never fill.
        max_concurrency: batches of this deployment in flight at once (>= 1).
        wait_when_idle: also hold a batch for ``max_wait_ms`` when no call of this deployment is running. Off by
            default: a lone request then goes straight to the model instead of paying ``max_wait_ms``, and under
            load batches still fill while the call in flight runs.
    """

    max_batch_size: int = attrs.field(default=32, kw_only=True)
    max_wait_ms: float = attrs.field(default=2.0, kw_only=True)
    max_queue: int = attrs.field(default=256, kw_only=True)
    max_concurrency: int = attrs.field(default=1, kw_only=True)
    wait_when_idle: bool = attrs.field(default=False, kw_only=True)

    _max_wait_s: float = attrs.field(init=False, default=0.0, repr=False)
    _open: dict[Hashable, _Batch] = attrs.field(init=False, factory=dict, repr=False)
    _ready: deque[_Batch] = attrs.field(init=False, factory=deque, repr=False)
    _queued: int = attrs.field(init=False, default=0, repr=False)
    _queued_rows: int = attrs.field(init=False, default=0, repr=False)

    def __attrs_post_init__(self) -> None:
        for name, minimum in (
            ("max_batch_size", 1),
            ("max_wait_ms", 0),
            ("max_queue", 1),
            ("max_concurrency", 1),
        ):
            value = getattr(self, name)
            if not value >= minimum:  # also rejects NaN
                raise ValueError(f"{name} must be >= {minimum}, got {value}")
        self._max_wait_s = self.max_wait_ms / 1000.0

    @property
    def queue_depth(self) -> int:
        """Requests waiting in open or flushed batches, not yet handed to the model."""
        return self._queued

    def _is_idle(self) -> bool:
        return self._in_flight == 0 and self._queued == 0

    def _reset_pending(self) -> None:
        self._open.clear()
        self._ready.clear()
        self._queued = self._queued_rows = self._in_flight = 0
        self._idle_waiters.clear()

    async def submit(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Predict ``inputs`` as part of a batch and return this request's rows of every output.

        Raises :class:`Overloaded` (at once) when ``max_queue`` requests wait, :class:`DispatcherClosed` after
        ``close()``, :class:`modelyard.errors.InvalidInput` for a scalar input or inputs with different row counts,
        the model's exception (the same one for every request of the batch), or :class:`ValueError` when the model
        returns outputs whose axis 0 is not the batch's row count. Cancelling the caller withdraws its rows if the
        batch has not been sent to the model yet; otherwise its share of the result is dropped. The other requests
        are unaffected either way.

        The returned arrays are views into the batch's output arrays.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop and not self._adopt(loop):
            return await self._bridge(self.submit(inputs))
        if self._closed:
            raise DispatcherClosed(self.deployment)
        inputs, rows, key = _inspect(inputs, self.deployment)
        if self._queued >= self.max_queue:
            self.rejected += 1
            ahead = math.ceil(self._queued_rows / self.max_batch_size) / self.max_concurrency + 1
            raise Overloaded(self.deployment, _clamp_retry(self._service_time * ahead), self._queued)

        future = loop.create_future()
        limit = self.max_batch_size
        if rows >= limit:
            # Runs alone: splitting a request would need reassembly, and it fills a call on its own anyway.
            batch = _Batch(key)
            self._add(batch, future, inputs, rows)
            self._enqueue(batch)
        else:
            current = self._open.get(key)
            if current is not None and current.rows + rows > limit:
                self._seal(current)  # as full as it can get: send it on and start the next
                current = None
            if current is not None:
                batch = current
            else:
                batch = _Batch(key)
                self._open[key] = batch
                # One timer per batch, not per request. call_soon for 0 ms: requests arriving in this loop
                # iteration still join. When the model is idle there is nothing to wait for: waiting would only
                # add max_wait_ms to a lone request's latency, while under load batches still fill up during
                # the call in flight (and wait at most max_wait_ms for more once they are due).
                if self._max_wait_s > 0 and (self.wait_when_idle or self._in_flight > 0 or self._ready):
                    batch.timer = loop.call_later(self._max_wait_s, self._on_timer, batch)
                else:
                    batch.timer = loop.call_soon(self._on_timer, batch)
            # Added before sealing: _seal may dispatch synchronously, and the lists freeze at dispatch.
            self._add(batch, future, inputs, rows)
            if batch.rows >= limit:
                self._seal(batch)
        try:
            return await future
        except asyncio.CancelledError:
            if not batch.dispatched:
                self._withdraw(batch, future)
            raise

    # ---- batch bookkeeping (loop thread only)
    def _add(
        self, batch: _Batch, future: asyncio.Future[Any], inputs: Mapping[str, np.ndarray], rows: int
    ) -> None:
        batch.futures.append(future)
        batch.inputs.append(inputs)
        batch.sizes.append(rows)
        batch.rows += rows
        self._queued += 1
        self._queued_rows += rows
        self.requests += 1

    def _withdraw(self, batch: _Batch, future: asyncio.Future[Any]) -> None:
        # A caller went away before its batch left: take its rows out so the model does not compute them.
        index = batch.futures.index(future)
        del batch.futures[index], batch.inputs[index]
        rows = batch.sizes.pop(index)
        batch.rows -= rows
        self._queued -= 1
        self._queued_rows -= rows
        if not batch.futures:
            # Nobody left: drop it. If it sits in the ready queue, _pump skips it.
            if batch.timer is not None:
                batch.timer.cancel()
                batch.timer = None
            if self._open.get(batch.key) is batch:
                del self._open[batch.key]
        if self._closed:
            self._notify_idle()

    def _on_timer(self, batch: _Batch) -> None:
        batch.timer = None
        if not batch.queued and not batch.dispatched and batch.futures:
            # Due, but left open: until a concurrency slot frees up it may as well take more requests.
            self._enqueue(batch)

    def _seal(self, batch: _Batch) -> None:
        # Closed for new requests, and due.
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        if not batch.queued:
            self._enqueue(batch)

    def _enqueue(self, batch: _Batch) -> None:
        batch.queued = True
        self._ready.append(batch)
        self._pump()

    def _pump(self) -> None:
        ready = self._ready
        while ready and self._in_flight < self.max_concurrency:
            batch = ready.popleft()
            if batch.futures and not batch.dispatched:
                self._launch(batch)

    def _launch(self, batch: _Batch) -> None:
        batch.dispatched = True
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]
        self._queued -= len(batch.futures)
        self._queued_rows -= batch.rows
        self._in_flight += 1
        self.batches += 1
        self.rows += batch.rows
        loop = self._loop
        assert loop is not None
        try:
            work = self.executor.submit(self._execute, batch)
        except Exception as exc:  # executor shut down
            self._in_flight -= 1
            self._fail(batch, exc)
            return
        # `loop` captured now, not read at completion: after a re-bind the answer must go to the loop that asked.
        work.add_done_callback(lambda done: _call_soon_threadsafe(loop, self._deliver, batch, done))

    def _execute(self, batch: _Batch) -> tuple[list[dict[str, np.ndarray]], float]:
        """Worker thread: concatenate, call the model, check and slice the outputs.

        Concatenation and slicing happen here rather than on the loop so that large batches do not stall it.
        """
        parts = batch.inputs
        total = batch.rows
        if len(parts) == 1:
            merged = parts[0]  # nothing to merge: no copy
        else:
            merged = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        start = time.perf_counter()
        outputs = self.predict(merged)
        elapsed = time.perf_counter() - start
        if not isinstance(outputs, Mapping):
            raise TypeError(
                f"deployment {self.deployment!r}: the model returned {type(outputs).__name__}, "
                "expected a mapping of output names to arrays"
            )
        checked: dict[str, np.ndarray] = {}
        for name, value in outputs.items():
            if type(value) is not np.ndarray:
                value = np.asarray(value)
            if value.ndim == 0 or value.shape[0] != total:
                got = "a scalar" if value.ndim == 0 else f"{value.shape[0]} rows"
                raise ValueError(
                    f"deployment {self.deployment!r}: the model returned {got} for output {name!r} "
                    f"from a batch of {total} rows; cannot split it back to the {len(parts)} requests"
                )
            checked[name] = value
        if len(parts) == 1:
            return [checked], elapsed
        results = []
        start_row = 0
        for size in batch.sizes:
            stop = start_row + size
            results.append({name: value[start_row:stop] for name, value in checked.items()})
            start_row = stop
        return results, elapsed

    def _deliver(self, batch: _Batch, work: ConcurrentFuture[Any]) -> None:
        # Loop thread, once the batch's model call has ended.
        self._in_flight -= 1
        if work.cancelled():
            self._fail(
                batch,
                RuntimeError(f"deployment {self.deployment!r}: the executor dropped the batch (shut down?)"),
            )
        elif (exc := work.exception()) is not None:
            self._fail(batch, exc)
        else:
            results, elapsed = work.result()
            self._observe(elapsed)
            for future, result in zip(batch.futures, results, strict=True):
                if not future.done():  # cancelled callers: drop their share
                    future.set_result(result)
        self._pump()
        if self._closed:
            self._notify_idle()

    def _fail(self, batch: _Batch, exc: BaseException) -> None:
        # The same exception object goes to every caller of the batch: they share the one call that failed.
        for future in batch.futures:
            if not future.done():
                self.failed += 1
                future.set_exception(exc)

    async def _shutdown(self, drain: bool) -> None:
        self._closed = True
        if drain:
            # Flush everything now: waiting for more requests is pointless when none can come.
            for batch in list(self._open.values()):
                self._seal(batch)
        else:
            pending = list(self._open.values()) + list(self._ready)
            self._open.clear()
            self._ready.clear()
            closed = DispatcherClosed(self.deployment)
            for batch in pending:
                if batch.dispatched:  # listed twice (open and ready)
                    continue
                batch.dispatched = True  # frozen: a late cancellation must not withdraw from it
                if batch.timer is not None:
                    batch.timer.cancel()
                    batch.timer = None
                self._queued -= len(batch.futures)
                self._queued_rows -= batch.rows
                self._fail(batch, closed)
        await self._wait_idle()
