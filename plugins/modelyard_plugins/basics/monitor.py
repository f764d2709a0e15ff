"""The ``log`` monitor: aggregate served predictions and write one structlog line per deployment and interval.

On the request path it only appends the event to a bounded deque; a background thread drains it every
``interval_s`` seconds (and ``close`` drains what is left) and logs, per deployment, the number of predictions,
rows, errors and the p50/p99 latency.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import attrs
import numpy as np
import structlog
from modelyard import hookimpl
from modelyard.providers import ProviderContext
from modelyard.types import PredictionEvent

log = structlog.get_logger(__name__)


@attrs.frozen(kw_only=True)
class LogMonitorConfig:
    """A ``[[monitors]]`` entry with ``use = "log"``.

    Attributes:
        interval_s: seconds between summary lines.
        sample_errors: add one failed request's error message per deployment to its line.
        buffer_size: predictions kept between flushes; beyond it the oldest are dropped (and counted).
    """

    interval_s: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    sample_errors: bool = True
    buffer_size: int = attrs.field(default=100_000, validator=attrs.validators.ge(1))


@attrs.define(eq=False)
class LogMonitor:
    """Registered as a plugin by the platform: receives ``modelyard_on_prediction`` and logs summaries."""

    config: LogMonitorConfig = attrs.field(factory=LogMonitorConfig)
    _events: deque[PredictionEvent] = attrs.field(init=False)
    _dropped: int = attrs.field(init=False, default=0)
    _stop: threading.Event = attrs.field(init=False, factory=threading.Event)
    _thread: threading.Thread | None = attrs.field(init=False, default=None)
    _flush_lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)

    def __attrs_post_init__(self) -> None:
        self._events = deque(maxlen=self.config.buffer_size)

    @classmethod
    def from_config(cls, config: LogMonitorConfig, ctx: ProviderContext | None = None) -> LogMonitor:
        """The provider factory: ``[[monitors]] use = "log"``; starts the flushing thread."""
        monitor = cls(config)
        monitor.start()
        return monitor

    def start(self) -> None:
        """Start the background thread that logs a summary every ``interval_s`` seconds (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="modelyard-log-monitor", daemon=True)
            self._thread.start()

    @hookimpl
    def modelyard_on_prediction(self, event: PredictionEvent) -> None:
        """Record one prediction: an append to the buffer, nothing else (the request path)."""
        events = self._events
        if len(events) == events.maxlen:
            self._dropped += 1  # approximate under races; it only informs the summary line
        events.append(event)

    def flush(self) -> list[dict[str, Any]]:
        """Drain the buffer, log one line per deployment, and return those summaries (oldest deployment first)."""
        with self._flush_lock:
            events = self._events
            batch = []
            # popleft until empty rather than swap-and-clear: appends from other threads are never lost.
            while True:
                try:
                    batch.append(events.popleft())
                except IndexError:
                    break
            dropped, self._dropped = self._dropped, 0
        summaries = summarize(batch, sample_errors=self.config.sample_errors)
        for summary in summaries:
            log.info("predictions", interval_s=self.config.interval_s, **summary)
        if dropped:
            log.warning("prediction log buffer overflowed; summaries undercount", dropped=dropped)
        return summaries

    def close(self) -> None:
        """Stop the thread and log what is still buffered."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        self._thread = None
        self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.config.interval_s):
            try:
                self.flush()
            except Exception:  # a broken summary must not kill the thread (STYLE 11)
                log.error("log monitor failed to flush", exc_info=True)


def summarize(events: list[PredictionEvent], *, sample_errors: bool = True) -> list[dict[str, Any]]:
    """Aggregate events per deployment: model, version (of the newest event), count, rows, errors, and p50/p99
    latency in milliseconds; with ``sample_errors`` one error message (``error_sample``) when there is one."""
    groups: dict[str, list[PredictionEvent]] = {}
    for event in events:
        groups.setdefault(event.deployment, []).append(event)
    out = []
    for deployment, group in groups.items():
        latencies = np.fromiter((e.latency_s for e in group), dtype=np.float64, count=len(group))
        p50, p99 = np.percentile(latencies, [50, 99]) * 1000.0
        errors = [e for e in group if not e.ok]
        summary: dict[str, Any] = {
            "deployment": deployment,
            "model": group[-1].model,
            "version": group[-1].version,
            "count": len(group),
            "rows": sum(e.rows for e in group),
            "errors": len(errors),
            "p50_ms": round(float(p50), 3),
            "p99_ms": round(float(p99), 3),
        }
        if sample_errors and errors:
            summary["error_sample"] = next((e.error for e in errors if e.error), "prediction failed")
        out.append(summary)
    return out
