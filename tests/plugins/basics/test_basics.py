"""The basics plugin: ``anonymous`` auth, ``none`` billing and the ``log`` monitor."""

from __future__ import annotations

import time

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from modelyard.errors import QuotaExceeded
from modelyard.hookspecs.auth import Authenticator
from modelyard.hookspecs.billing import Meter
from modelyard.plugins import get_plugin_manager
from modelyard.types import ANONYMOUS, PredictionEvent, Principal
from modelyard_plugins import basics
from modelyard_plugins.basics.auth import AnonymousAuth
from modelyard_plugins.basics.billing import NoBilling
from modelyard_plugins.basics.monitor import LogMonitor, LogMonitorConfig, summarize


@pytest.fixture(autouse=True)
def _default_logging():
    """These tests capture the monitor's info lines: start from structlog's defaults (no level filter left
    behind by a platform another test assembled)."""
    structlog.reset_defaults()


def event(deployment: str = "churn", latency_ms: float = 1.0, ok: bool = True, rows: int = 1,
          error: str | None = None, version: int = 1) -> PredictionEvent:
    return PredictionEvent(deployment=deployment, model=deployment, version=version, rows=rows,
                           latency_s=latency_ms / 1000, ok=ok, error=error, at=time.time())


def test_providers_fill_their_slots() -> None:
    pm = get_plugin_manager(load_entrypoints=False, plugins=[basics])
    found = {p.slot: p.name for batch in (pm.hook.modelyard_authenticators(), pm.hook.modelyard_meters(),
                                          pm.hook.modelyard_monitors()) for ps in batch for p in ps}
    assert found == {"auth": "anonymous", "billing": "none", "monitors": "log"}


def test_anonymous_auth() -> None:
    auth = AnonymousAuth()
    assert isinstance(auth, Authenticator)
    assert auth.authenticate({}) is ANONYMOUS
    assert auth.authenticate({"authorization": "Bearer whatever"}) is ANONYMOUS
    assert auth.authorize(Principal(id="someone"), "deployments:delete", "deployments/churn") is True
    auth.close()


def test_no_billing() -> None:
    meter = NoBilling()
    assert isinstance(meter, Meter)
    assert meter.check_quota(Principal(id="anyone", team="growth"), "churn") is None  # never raises
    assert meter.report() == [] and meter.report(group_by="deployment") == []
    meter.flush()
    meter.close()
    # It implements no event hook, so the platform does not put it on the predict path.
    assert not any(name.startswith("modelyard_") for name in dir(meter))


def test_the_quota_check_is_cheap_enough_for_the_predict_path() -> None:
    """``Meter.check_quota`` runs once per prediction request: the ``none`` meter's costs a method call (a
    generous bound: 100,000 checks well under a second — any I/O or lock per call would blow it)."""
    meter, principal = NoBilling(), Principal(id="svc", roles=("reader",))
    check = meter.check_quota
    started = time.perf_counter()
    for _ in range(100_000):
        check(principal, "churn")
    assert time.perf_counter() - started < 0.5


def test_a_meter_with_quotas_satisfies_the_protocol_and_raises_quota_exceeded() -> None:
    """What a quota-enforcing meter looks like against the protocol: counters in memory, QuotaExceeded (429)."""

    class Capped(NoBilling):
        def __init__(self) -> None:
            self.calls: dict[str, int] = {}

        def check_quota(self, principal: Principal, deployment: str) -> None:
            used = self.calls[principal.team or principal.id] = self.calls.get(principal.team or principal.id, 0) + 1
            if used > 2:
                raise QuotaExceeded(f"team {principal.team!r} used its 2 calls", retry_after=30.0)

    meter = Capped()
    assert isinstance(meter, Meter)
    growth = Principal(id="a", team="growth")
    meter.check_quota(growth, "churn")
    meter.check_quota(Principal(id="b", team="growth"), "churn")
    with pytest.raises(QuotaExceeded) as err:
        meter.check_quota(growth, "churn")
    assert (err.value.status, err.value.problem_type, err.value.retry_after) == (429, "quota-exceeded", 30.0)
    meter.check_quota(Principal(id="c", team="risk"), "churn")  # another team's quota is its own


def test_summarize_aggregates_per_deployment() -> None:
    events = [event("a", ms) for ms in range(1, 101)]
    events += [event("b", 5.0, ok=False, error="ValueError: bad input", rows=3), event("b", 7.0, rows=2)]
    a, b = summarize(events)
    assert a["deployment"] == "a" and a["count"] == 100 and a["errors"] == 0 and a["rows"] == 100
    assert a["p50_ms"] == pytest.approx(50.5) and a["p99_ms"] == pytest.approx(99.01)
    assert "error_sample" not in a
    assert b["count"] == 2 and b["errors"] == 1 and b["rows"] == 5 and b["error_sample"] == "ValueError: bad input"
    (b_quiet,) = summarize(events[100:], sample_errors=False)
    assert "error_sample" not in b_quiet


@given(st.lists(st.tuples(st.sampled_from("xyz"), st.floats(0, 1000), st.booleans()), max_size=60))
def test_summaries_account_for_every_event(spec) -> None:
    events = [event(d, ms, ok) for d, ms, ok in spec]
    summaries = summarize(events)
    assert sum(s["count"] for s in summaries) == len(events)
    assert sum(s["errors"] for s in summaries) == sum(not ok for _, _, ok in spec)
    for s in summaries:
        lat = [ms for d, ms, _ in spec if d == s["deployment"]]
        assert min(lat) - 1e-3 <= s["p50_ms"] <= s["p99_ms"] <= max(lat) + 1e-3  # rounded to µs


def test_log_monitor_receives_events_through_the_hook_and_logs_summaries() -> None:
    monitor = LogMonitor(LogMonitorConfig(interval_s=3600))
    pm = get_plugin_manager(load_entrypoints=False, plugins=[monitor])
    for ms in (1.0, 2.0, 3.0):
        pm.hook.modelyard_on_prediction(event=event("churn", ms))
    pm.hook.modelyard_on_prediction(event=event("fraud", 4.0, ok=False))
    with structlog.testing.capture_logs() as logs:
        summaries = monitor.flush()
    assert [s["deployment"] for s in summaries] == ["churn", "fraud"]
    lines = [entry for entry in logs if entry["event"] == "predictions"]
    assert [(entry["deployment"], entry["count"], entry["errors"]) for entry in lines] == [("churn", 3, 0),
                                                                                              ("fraud", 1, 1)]
    assert lines[0]["p50_ms"] == pytest.approx(2.0) and lines[1]["error_sample"] == "prediction failed"
    assert monitor.flush() == []  # drained


def test_log_monitor_flushes_in_the_background_and_on_close() -> None:
    monitor = LogMonitor.from_config(LogMonitorConfig(interval_s=0.05))
    try:
        with structlog.testing.capture_logs() as logs:
            monitor.modelyard_on_prediction(event("churn"))
            deadline = time.monotonic() + 5
            while not any(e["event"] == "predictions" for e in logs):
                assert time.monotonic() < deadline, "the background thread never flushed"
                time.sleep(0.01)
            monitor.modelyard_on_prediction(event("late"))
            monitor.close()
    finally:
        monitor.close()
    assert [e["deployment"] for e in logs if e["event"] == "predictions"] == ["churn", "late"]


def test_log_monitor_buffer_is_bounded() -> None:
    monitor = LogMonitor(LogMonitorConfig(buffer_size=10))
    for _ in range(25):
        monitor.modelyard_on_prediction(event())
    with structlog.testing.capture_logs() as logs:
        (summary,) = monitor.flush()
    assert summary["count"] == 10
    assert any(e["event"].startswith("prediction log buffer overflowed") and e["dropped"] == 15 for e in logs)


def test_recording_is_cheap() -> None:
    # The hook runs on the request path: it must be an append, not aggregation or I/O.
    monitor = LogMonitor(LogMonitorConfig(buffer_size=1_000_000))
    ev = event()
    started = time.perf_counter()
    for _ in range(20_000):
        monitor.modelyard_on_prediction(ev)
    per_call = (time.perf_counter() - started) / 20_000
    assert per_call < 20e-6, per_call
