"""Request scheduling for the embedded in-process runtime: dynamic batching, bounded queues, concurrency limits.

A deployed model is a blocking callable ``predict(inputs) -> outputs`` over ``dict[str, np.ndarray]`` with the batch
on axis 0. Each deployment gets a *dispatcher* that turns ``await submit(inputs)`` into calls on a
:class:`concurrent.futures.ThreadPoolExecutor` shared by every deployment:

* :class:`DirectDispatcher`: one model call per request, at most ``max_concurrency`` at once, at most
  ``max_queue`` callers waiting for a slot; models measured faster than ``inline_below_s`` run on the caller's
  event loop (the thread hop would cost more than they do);
* :class:`BatchingDispatcher`: concurrent requests with the same input layout are concatenated along axis 0
  into one call of at most ``max_batch_size`` rows, flushed when full or ``max_wait_ms`` after the first request
  of the batch arrived; the outputs are sliced back so every caller gets exactly its own rows.

``submit`` answers ``(outputs, model_s)``: the request's outputs and the seconds its model call took. Both raise
:class:`Overloaded` (HTTP 429 with Retry-After) at once, never blocking, when their queue is full.

Callers may await ``submit`` from any event loop in any thread, at the same time: the server's loop, the loops of
the Platform's sync facade (one per blocking caller's thread, :mod:`modelyard.bridge`), a user's ``asyncio.run``.
They share one queue and one set of batches. Scheduling state is guarded by one lock per dispatcher, held for a
few attribute updates only — never while a model runs, an executor is called or a future's callbacks run — and
each caller's future is answered on its own loop. Concurrency slots are released by the worker thread that ran
the call, so no limit depends on a caller's loop being alive; a batch joined from a second loop also gets a
timer on that loop, so it is flushed even if the loop that opened it stops.

This is the hottest path of the platform, which shapes the code: per request there is at most one hop to a
worker thread and one back (``executor.submit`` + ``call_soon_threadsafe``; none for inline calls), two short lock
sections, no task creation, no logging; the caller awaits a bare loop future.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Executor
from concurrent.futures import Future as ConcurrentFuture
from functools import partial
from typing import Any

import attrs
import numpy as np
from modelyard import errors

__all__ = [
    "Answer",
    "BatchingDispatcher",
    "DirectDispatcher",
    "DispatcherClosed",
    "DispatcherStats",
    "Overloaded",
    "PredictFn",
]

PredictFn = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
"""A deployed model: named arrays in, named arrays out, batch on axis 0 of every array."""

Answer = tuple[Mapping[str, np.ndarray], float]
"""What ``submit`` returns: the request's outputs, and the seconds of the model call that computed them."""

_MIN_RETRY_AFTER = 0.05
_MAX_RETRY_AFTER = 30.0
# Weight of the newest sample in the service-time average: reacts within a handful of calls, yet one slow
# outlier does not make every rejected client back off for long.
_EWMA_ALPHA = 0.2

_running_loop = asyncio._get_running_loop  # the C accessor: no exception when there is none


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


def _on_loop(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object) -> bool:
    """Run ``callback(*args)`` on ``loop``: now when this thread runs it, else scheduled thread-safely.

    False when the loop is closed: whoever waited there is gone (``asyncio.run`` returned), nothing to answer.
    Never called with the dispatcher's lock held: the callback may take it.
    """
    if _running_loop() is loop:
        callback(*args)
        return True
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        return False
    return True


def _rows_of(inputs: Mapping[str, Any]) -> int:
    try:
        return len(next(iter(inputs.values())))
    except (StopIteration, TypeError):
        return 0


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
    """The lock, close() and stats, shared by both dispatchers."""

    predict: PredictFn
    executor: Executor
    deployment: str = attrs.field(default="default", kw_only=True)

    requests: int = attrs.field(init=False, default=0)
    batches: int = attrs.field(init=False, default=0)
    rows: int = attrs.field(init=False, default=0)
    rejected: int = attrs.field(init=False, default=0)
    failed: int = attrs.field(init=False, default=0)

    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False)
    _idle: threading.Condition = attrs.field(init=False, repr=False)
    _closed: bool = attrs.field(init=False, default=False, repr=False)
    _in_flight: int = attrs.field(init=False, default=0, repr=False)
    _service_time: float = attrs.field(init=False, default=0.0, repr=False)

    @_idle.default
    def _idle_condition(self) -> threading.Condition:
        return threading.Condition(self._lock)

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
        """A snapshot of gauges and counters (cheap: reads a few ints)."""
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

    def _shutdown(self, drain: bool) -> Callable[[], None] | None:
        """Under the lock, with ``_closed`` set: settle what ``drain`` says; may return work to do unlocked."""
        raise NotImplementedError

    # ---- shared helpers
    def reset_timing(self) -> None:
        """Forget the measured call time (e.g. after the model was unloaded: the next call reloads it and must
        not run inline on the event loop)."""
        self._service_time = 0.0

    def _observe(self, elapsed: float) -> None:
        # Under the lock. Exponentially weighted service time: Retry-After estimates and the inline decision.
        st = self._service_time
        self._service_time = elapsed if st == 0.0 else st + _EWMA_ALPHA * (elapsed - st)

    def _count_failed(self, n: int) -> None:
        with self._lock:
            self.failed += n

    def _notify_if_idle(self) -> None:
        # close_sync() waits on the condition; called (after any answers were sent) once closing.
        with self._lock:
            if self._is_idle():
                self._idle.notify_all()

    # ---- close
    def close_sync(self, timeout: float | None = None, *, drain: bool = True) -> None:
        """Stop accepting requests, settle the pending ones, and return when nothing is queued or running.

        New ``submit`` calls raise :class:`DispatcherClosed` from the moment this is called. With ``drain`` (the
        default) every accepted request is still run, batches are flushed at once without waiting for
        ``max_wait_ms``; with ``drain=False`` queued requests fail with :class:`DispatcherClosed` and only model
        calls already running are awaited. Raises :class:`TimeoutError` if that takes longer than ``timeout``
        seconds (the dispatcher stays closed). Idempotent; callable from any thread — but not from a loop that
        still has requests waiting for a slot here, since they are answered on it.
        """
        with self._lock:
            self._closed = True
            after = self._shutdown(drain)
        if after is not None:
            after()
        with self._lock:
            if not self._idle.wait_for(self._is_idle, timeout):
                raise TimeoutError(f"deployment {self.deployment!r}: requests still pending after {timeout}s")

    async def close(self, *, drain: bool = True) -> None:
        """:meth:`close_sync` for async callers: waits in a worker thread, never blocking the loop."""
        await asyncio.to_thread(self.close_sync, None, drain=drain)


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
        inline_below_s: when the measured call time is below this (and > 0), call the model on the caller's event
            loop instead of hopping to a worker thread. For tiny models the hop (two thread switches, ~70-90 µs
            of CPU) costs 10x the model itself; a sub-threshold call blocks the loop for less than the hop would.
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

    async def submit(self, inputs: Mapping[str, np.ndarray]) -> Answer:
        """Run ``predict(inputs)`` once a concurrency slot is free; return its outputs and the call's seconds.

        Raises :class:`Overloaded` (at once) when ``max_queue`` callers already wait, :class:`DispatcherClosed`
        after ``close()``, and whatever the model raises. Cancelling the caller withdraws it from the queue; a call
        already running finishes in its thread and keeps its slot until then, so the limit holds for real threads.
        """
        waiter: asyncio.Future[None] | None = None
        with self._lock:
            if self._closed:
                raise DispatcherClosed(self.deployment)
            if self._in_flight < self.max_concurrency:
                # Slots are handed straight from a finishing call to the next waiter (see _release), so a free
                # slot implies nobody is waiting: taking it cannot jump the queue.
                self._in_flight += 1
                self.requests += 1
                self.batches += 1
                for first in inputs.values():
                    try:
                        self.rows += len(first)
                    except TypeError:  # a scalar: no rows to count
                        pass
                    break
            else:
                waiter = self._queue_waiter()
        if waiter is not None:
            await self._wait_for_slot(waiter)
            with self._lock:
                self.batches += 1
                self.rows += _rows_of(inputs)

        if 0.0 < self._service_time < self.inline_below_s:
            start = time.perf_counter()
            try:
                outputs = self.predict(inputs)
            except BaseException:
                with self._lock:
                    self.failed += 1
                    self._release()
                if self._closed:
                    self._notify_if_idle()
                raise
            elapsed = time.perf_counter() - start
            with self._lock:
                self._observe(elapsed)
                self._release()
            if self._closed:
                self._notify_if_idle()
            return outputs, elapsed

        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        try:
            work = self.executor.submit(self._call, inputs)
        except BaseException:
            with self._lock:
                self._release()
            raise
        work.add_done_callback(partial(self._done, answer))
        try:
            return await answer
        except asyncio.CancelledError:
            # Only stops a call that has not started; a running one completes and then frees the slot.
            work.cancel()
            raise

    def _queue_waiter(self) -> asyncio.Future[None]:
        # Under the lock: wait for a slot, or be refused at once.
        waiters = self._waiters
        if len(waiters) >= self.max_queue:
            self.rejected += 1
            ahead = len(waiters) / self.max_concurrency + 1
            raise Overloaded(self.deployment, _clamp_retry(self._service_time * ahead), len(waiters))
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        self.requests += 1
        return waiter

    async def _wait_for_slot(self, waiter: asyncio.Future[None]) -> None:
        try:
            await waiter
        except asyncio.CancelledError:
            with self._lock:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    # Already taken off the queue: a slot was handed to us (pass it on, unless the hand-over
                    # is still on its way — _granted passes it on then) or we were skipped as cancelled.
                    if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                        self._release()
                if self._closed and self._is_idle():
                    self._idle.notify_all()
            raise

    def _call(self, inputs: Mapping[str, np.ndarray]) -> Answer:
        # Worker thread.
        start = time.perf_counter()
        outputs = self.predict(inputs)
        return outputs, time.perf_counter() - start

    def _release(self) -> None:
        """Under the lock: a model call ended; hand its slot to the next live waiter, or free it."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if waiter.done():  # cancelled while waiting
                continue
            loop = waiter.get_loop()
            if _running_loop() is loop:
                waiter.set_result(None)  # the slot moves to that waiter; _in_flight stays
                return
            try:
                loop.call_soon_threadsafe(self._granted, waiter)
            except RuntimeError:  # its loop is closed: nobody will take the slot there
                continue
            return
        self._in_flight -= 1

    def _granted(self, waiter: asyncio.Future[None]) -> None:
        # On the waiter's loop: a slot handed over from another thread arrives.
        if waiter.done():  # cancelled meanwhile: the slot goes to the next one
            with self._lock:
                self._release()
                if self._closed and self._is_idle():
                    self._idle.notify_all()
        else:
            waiter.set_result(None)

    def _done(self, answer: asyncio.Future[Answer], work: ConcurrentFuture[Answer]) -> None:
        # The worker thread, once the model call has ended (or the caller's thread, if it was cancelled).
        with self._lock:
            self._release()
            if not work.cancelled() and work.exception() is None:
                self._observe(work.result()[1])
        _on_loop(answer.get_loop(), self._settle, answer, work)
        if self._closed:
            self._notify_if_idle()

    def _settle(self, answer: asyncio.Future[Answer], work: ConcurrentFuture[Answer]) -> None:
        # On the caller's loop.
        if answer.done():  # the caller was cancelled
            return
        if work.cancelled():
            self._count_failed(1)
            answer.set_exception(
                RuntimeError(f"deployment {self.deployment!r}: the executor dropped the call (shut down?)")
            )
            return
        exc = work.exception()
        if exc is not None:
            self._count_failed(1)
            answer.set_exception(exc)
        else:
            answer.set_result(work.result())

    def _shutdown(self, drain: bool) -> Callable[[], None] | None:
        if drain:
            return None
        waiters, self._waiters = self._waiters, deque()

        def refuse() -> None:
            for waiter in waiters:
                _on_loop(waiter.get_loop(), self._refuse, waiter)

        return refuse

    def _refuse(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self._count_failed(1)
            waiter.set_exception(DispatcherClosed(self.deployment))


# --------------------------------------------------------------------------------------------- batching
@attrs.define(eq=False)
class _Batch:
    """Requests with one input layout (``key``) that will share a model call. Parallel lists, not request
    objects, to keep per-request allocation down."""

    key: Hashable
    loop: asyncio.AbstractEventLoop  # the loop of the request that opened it: its timer runs there
    futures: list[asyncio.Future[Any]] = attrs.field(factory=list)
    inputs: list[Mapping[str, np.ndarray]] = attrs.field(factory=list)
    sizes: list[int] = attrs.field(factory=list)
    rows: int = 0
    timer: asyncio.Handle | None = None
    # A loop other than ``loop`` that joined (it got a timer too); mixed: futures live on several loops.
    backup: asyncio.AbstractEventLoop | None = None
    mixed: bool = False
    # queued: in the ready queue, waiting for a concurrency slot (it may still absorb requests while it waits).
    # dispatched: handed to the executor (or failed by close); its lists are frozen from then on, because a
    # worker thread reads them.
    queued: bool = False
    dispatched: bool = False

    def cancel_timer(self) -> None:
        # A handle may only be cancelled from its loop's thread; elsewhere it fires and finds nothing to do.
        if self.timer is not None and _running_loop() is self.loop:
            self.timer.cancel()
            self.timer = None


def _inspect(
    inputs: Mapping[str, np.ndarray], deployment: str
) -> tuple[Mapping[str, np.ndarray], int, Hashable]:
    """Validate one request for batching; return (inputs as arrays, its row count, its layout key).

    Not a signature check (the runtime did that, once): what concatenating and slicing back need. Requests batch
    together only when their keys are equal: same input names, and per name the same dtype and the same shape
    beyond axis 0, so that concatenation can neither fail nor silently cast; every input must have the same rows.
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
    whichever comes first — at once when the model is idle, unless ``wait_when_idle`` (``max_wait_ms=0``: on the
    next loop iteration, merging whatever queued meanwhile). A flushed batch runs as soon as fewer than
    ``max_concurrency`` batches of this deployment are in flight; while it waits for a slot it keeps absorbing
    requests up to ``max_batch_size`` rows, so a busy model gets full batches. Inputs are concatenated along axis
    0 and every output is sliced back by each request's row count.

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

    async def submit(self, inputs: Mapping[str, np.ndarray]) -> Answer:
        """Predict ``inputs`` as part of a batch; return this request's rows of every output and the seconds of
        the batch's model call.

        Raises :class:`Overloaded` (at once) when ``max_queue`` requests wait, :class:`DispatcherClosed` after
        ``close()``, :class:`modelyard.errors.InvalidInput` for a scalar input or inputs with different row counts,
        the model's exception (the same one for every request of the batch), or :class:`ValueError` when the model
        returns outputs whose axis 0 is not the batch's row count. Cancelling the caller withdraws its rows if the
        batch has not been sent to the model yet; otherwise its share of the result is dropped. The other requests
        are unaffected either way.

        The returned arrays are views into the batch's output arrays.
        """
        loop = asyncio.get_running_loop()
        inputs, rows, key = _inspect(inputs, self.deployment)
        future: asyncio.Future[Answer] = loop.create_future()
        launch: list[_Batch] | None = None
        with self._lock:
            if self._closed:
                raise DispatcherClosed(self.deployment)
            if self._queued >= self.max_queue:
                self.rejected += 1
                ahead = math.ceil(self._queued_rows / self.max_batch_size) / self.max_concurrency + 1
                raise Overloaded(self.deployment, _clamp_retry(self._service_time * ahead), self._queued)
            limit = self.max_batch_size
            if rows >= limit:
                # Runs alone: splitting a request would need reassembly, and it fills a call on its own anyway.
                batch = _Batch(key, loop)
                self._add(batch, future, inputs, rows, loop)
                self._enqueue(batch)
            else:
                current = self._open.get(key)
                if current is not None and current.rows + rows > limit:
                    self._seal(current)  # as full as it can get: send it on and start the next
                    current = None
                if current is not None:
                    batch = current
                    if loop is not batch.loop and loop is not batch.backup:
                        # Joined from another loop: a timer here too, in case the opener's loop stops first.
                        batch.backup = loop
                        loop.call_later(self._max_wait_s, self._on_timer, batch)
                else:
                    batch = _Batch(key, loop)
                    self._open[key] = batch
                    # One timer per batch, not per request. call_soon for 0 ms: requests arriving in this loop
                    # iteration still join. When the model is idle there is nothing to wait for: waiting would
                    # only add max_wait_ms to a lone request's latency, while under load batches still fill up
                    # during the call in flight (and wait at most max_wait_ms for more once they are due).
                    if self._max_wait_s > 0 and (self.wait_when_idle or self._in_flight > 0 or self._ready):
                        batch.timer = loop.call_later(self._max_wait_s, self._on_timer, batch)
                    else:
                        batch.timer = loop.call_soon(self._on_timer, batch)
                self._add(batch, future, inputs, rows, loop)
                if batch.rows >= limit:
                    self._seal(batch)
            if self._ready:
                launch = self._take_ready()
        if launch:
            self._start(launch)
        try:
            return await future
        except asyncio.CancelledError:
            with self._lock:
                if not batch.dispatched:
                    self._withdraw(batch, future)
            raise

    # ---- batch bookkeeping (under the lock)
    def _add(self, batch: _Batch, future: asyncio.Future[Any], inputs: Mapping[str, np.ndarray], rows: int,
             loop: asyncio.AbstractEventLoop) -> None:
        batch.futures.append(future)
        batch.inputs.append(inputs)
        batch.sizes.append(rows)
        batch.rows += rows
        if loop is not batch.loop:
            batch.mixed = True
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
            # Nobody left: drop it. If it sits in the ready queue, _take_ready skips it.
            batch.cancel_timer()
            if self._open.get(batch.key) is batch:
                del self._open[batch.key]
        if self._closed and self._is_idle():
            self._idle.notify_all()

    def _on_timer(self, batch: _Batch) -> None:
        # On a loop that holds a caller of the batch.
        launch = None
        with self._lock:
            if not batch.queued and not batch.dispatched and batch.futures:
                # Due, but left open: until a concurrency slot frees up it may as well take more requests.
                self._enqueue(batch)
                launch = self._take_ready()
        if launch:
            self._start(launch)

    def _seal(self, batch: _Batch) -> None:
        # Closed for new requests, and due.
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]
        batch.cancel_timer()
        if not batch.queued:
            self._enqueue(batch)

    def _enqueue(self, batch: _Batch) -> None:
        batch.queued = True
        self._ready.append(batch)

    def _take_ready(self) -> list[_Batch]:
        """The ready batches that may start now (a slot each), marked as started; the caller starts them
        after releasing the lock."""
        ready = self._ready
        out = []
        while ready and self._in_flight < self.max_concurrency:
            batch = ready.popleft()
            if not batch.futures or batch.dispatched:
                continue
            batch.dispatched = True
            batch.cancel_timer()
            if self._open.get(batch.key) is batch:
                del self._open[batch.key]
            self._queued -= len(batch.futures)
            self._queued_rows -= batch.rows
            self._in_flight += 1
            self.batches += 1
            self.rows += batch.rows
            out.append(batch)
        return out

    # ---- running and answering (outside the lock)
    def _start(self, batches: list[_Batch]) -> None:
        for batch in batches:
            try:
                work = self.executor.submit(self._execute, batch)
            except Exception as exc:  # executor shut down
                with self._lock:
                    self._in_flight -= 1
                self._answer(batch, None, 0.0, exc)
                if self._closed:
                    self._notify_if_idle()
                continue
            work.add_done_callback(partial(self._deliver, batch))

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
        # The worker thread, once the batch's model call has ended.
        results = None
        elapsed = 0.0
        exc: BaseException | None
        if work.cancelled():
            exc = RuntimeError(f"deployment {self.deployment!r}: the executor dropped the batch (shut down?)")
        else:
            exc = work.exception()
            if exc is None:
                results, elapsed = work.result()
        with self._lock:
            self._in_flight -= 1
            if exc is None:
                self._observe(elapsed)
            launch = self._take_ready() if self._ready else None
        if launch:
            self._start(launch)  # keep the model busy first, then answer
        self._answer(batch, results, elapsed, exc)
        if self._closed:
            self._notify_if_idle()

    def _answer(self, batch: _Batch, results: list[dict[str, np.ndarray]] | None, elapsed: float,
                exc: BaseException | None) -> None:
        """Answer every caller of a batch on its own loop: one hop per loop (almost always one)."""
        futures = batch.futures
        if not batch.mixed:
            _on_loop(batch.loop, self._settle, futures, results, elapsed, exc)
            return
        groups: dict[asyncio.AbstractEventLoop, tuple[list[Any], list[Any] | None]] = {}
        for i, future in enumerate(futures):
            fs, rs = groups.setdefault(future.get_loop(), ([], [] if results is not None else None))
            fs.append(future)
            if rs is not None and results is not None:
                rs.append(results[i])
        for loop, (fs, rs) in groups.items():
            _on_loop(loop, self._settle, fs, rs, elapsed, exc)

    def _settle(self, futures: list[asyncio.Future[Any]], results: list[dict[str, np.ndarray]] | None,
                elapsed: float, exc: BaseException | None) -> None:
        # On the callers' loop. Cancelled callers are skipped: their share is dropped.
        if exc is not None:
            # The same exception object goes to every caller of the batch: they share the one call that failed.
            live = [f for f in futures if not f.done()]
            if live:
                self._count_failed(len(live))
            for future in live:
                future.set_exception(exc)
            return
        assert results is not None
        for future, result in zip(futures, results, strict=True):
            if not future.done():
                future.set_result((result, elapsed))

    def _shutdown(self, drain: bool) -> Callable[[], None] | None:
        if drain:
            # Flush everything now: waiting for more requests is pointless when none can come.
            for batch in list(self._open.values()):
                self._seal(batch)
            launch = self._take_ready() if self._ready else None
            return (lambda: self._start(launch)) if launch else None
        pending = list(self._open.values()) + list(self._ready)
        self._open.clear()
        self._ready.clear()
        dropped = []
        for batch in pending:
            if batch.dispatched:  # listed twice (open and ready)
                continue
            batch.dispatched = True  # frozen: a late cancellation must not withdraw from it
            batch.cancel_timer()
            self._queued -= len(batch.futures)
            self._queued_rows -= batch.rows
            dropped.append(batch)
        if not dropped:
            return None
        closed = DispatcherClosed(self.deployment)

        def refuse() -> None:
            for batch in dropped:
                self._answer(batch, None, 0.0, closed)

        return refuse
