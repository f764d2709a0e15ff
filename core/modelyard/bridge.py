"""The sync facade's one bridge onto the async core: blocking callers drive an event loop in their own thread.

``Platform.predict`` (and every other blocking call onto async code) goes through one :class:`SyncBridge` owned
by the Platform. Each calling thread gets an event loop of its own, made on its first call, and runs the
coroutine to completion on it: no thread hop, so a model small enough to run inline is called in the caller's
thread, as a plain function call would be (about 8 µs of overhead; a blocking portal — a loop in another thread —
costs 10-20x that in thread switches). The async core serves callers on any number of loops at once, so these
callers share queues and batches with the server's. A caller whose thread already runs an event loop cannot run
another on it (asyncio allows one per thread); it is served from a helper thread instead, and its own loop
stalls meanwhile — async code should await the coroutine.

A thread's loop is closed when the thread ends, or by :meth:`SyncBridge.close` if it is idle then.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from modelyard.errors import Unavailable

T = TypeVar("T")


class _ThreadLoop:
    """One thread's event loop; closed when the thread's local storage goes (the thread ended)."""

    __slots__ = ("__weakref__", "loop")

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        weakref.finalize(self, _close_loop, self.loop)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    if not loop.is_running() and not loop.is_closed():
        loop.close()


class SyncBridge:
    """Runs coroutine functions for blocking callers; thread-safe. See the module docstring."""

    def __init__(self, *, name: str = "modelyard-sync") -> None:
        self._name = name
        self._local = threading.local()
        self._lock = threading.Lock()
        self._loops: weakref.WeakSet[_ThreadLoop] = weakref.WeakSet()
        self._helper: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called; a closed bridge refuses new calls."""
        return self._closed

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)`` on this thread's loop and return its result (or raise its exception).

        Raises :class:`~modelyard.errors.Unavailable` once the bridge is closed.
        """
        if self._closed:
            raise Unavailable("the platform is closed")
        if asyncio._get_running_loop() is not None:
            return self._helper_pool().submit(self._drive, fn, args, kwargs).result()
        return self._drive(fn, args, kwargs)

    def _drive(self, fn: Callable[..., Coroutine[Any, Any, T]], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        holder = getattr(self._local, "holder", None)
        if holder is None:
            holder = _ThreadLoop()
            self._local.holder = holder
            with self._lock:
                self._loops.add(holder)
        loop = holder.loop
        if loop.is_closed():  # closed by close() between the check in run() and here
            raise Unavailable("the platform is closed")
        task = loop.create_task(fn(*args, **kwargs))
        try:
            return loop.run_until_complete(task)
        finally:
            if not task.done():
                # Interrupted (KeyboardInterrupt): leave nothing running on a loop that nobody drives any more.
                task.cancel()
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(task)

    def _helper_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise Unavailable("the platform is closed")
            if self._helper is None:
                self._helper = ThreadPoolExecutor(thread_name_prefix=self._name)
            return self._helper

    def close(self) -> None:
        """Refuse new calls, wait for the helper thread's, and close every idle thread loop. Idempotent."""
        with self._lock:
            self._closed = True
            helper, self._helper = self._helper, None
            holders = list(self._loops)
        if helper is not None:
            helper.shutdown(wait=True)
        for holder in holders:
            _close_loop(holder.loop)  # a loop still running a call closes when its thread ends


__all__ = ["SyncBridge"]
