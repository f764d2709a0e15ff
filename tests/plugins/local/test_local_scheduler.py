"""The local scheduler: state transitions, retries with backoff, wait, cancel, and the job-finished hook."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelyard import errors, hookimpl
from modelyard.hookspecs.scheduler import Scheduler
from modelyard.plugins import get_plugin_manager
from modelyard_plugins.local import modelyard_schedulers
from modelyard_plugins.local.scheduler import LocalScheduler, LocalSchedulerConfig, raise_if_cancelled


class Recorder:
    """A test plugin collecting every finished job."""

    def __init__(self) -> None:
        self.jobs = []

    @hookimpl
    def modelyard_after_job_finished(self, job):
        self.jobs.append(job)


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def scheduler(recorder):
    pm = get_plugin_manager(load_entrypoints=False, plugins=[recorder])
    s = LocalScheduler(LocalSchedulerConfig(workers=2, backoff_s=0.01, max_backoff_s=0.05), hook=pm.hook)
    yield s
    s.close()


def test_a_job_runs_and_succeeds(scheduler, recorder) -> None:
    assert isinstance(scheduler, Scheduler)
    job = scheduler.submit("add", lambda a, b: {"sum": a + b}, params={"a": 1, "b": 2})
    assert job.state == "queued" and job.kind == "add" and job.attempts == 0
    done = scheduler.wait(job.id, timeout=5)
    assert done.state == "succeeded" and done.result == {"sum": 3} and done.attempts == 1 and done.error is None
    assert done.updated_at >= done.created_at
    assert scheduler.get(job.id) == done
    assert recorder.jobs == [done]


def test_results_that_are_not_mappings(scheduler) -> None:
    a = scheduler.submit("none", lambda: None, params={})
    b = scheduler.submit("value", lambda: 42, params={})
    assert scheduler.wait(a.id, 5).result is None
    assert scheduler.wait(b.id, 5).result == {"value": 42}


def test_states_while_running(scheduler) -> None:
    gate = threading.Event()
    job = scheduler.submit("slow", lambda: gate.wait(5) and None, params={})
    deadline = time.monotonic() + 5
    while scheduler.get(job.id).state != "running":
        assert time.monotonic() < deadline
        time.sleep(0.002)
    assert scheduler.wait(job.id, timeout=0.01).state == "running"  # the timeout passes, the record comes back
    gate.set()
    assert scheduler.wait(job.id, 5).state == "succeeded"


def test_retries_with_backoff_then_success(scheduler, recorder) -> None:
    calls: list[float] = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError(f"attempt {len(calls)}")
        return {"ok": True}

    job = scheduler.wait(scheduler.submit("flaky", flaky, params={}, retries=3).id, 5)
    assert job.state == "succeeded" and job.attempts == 3 and job.result == {"ok": True}
    assert calls[1] - calls[0] >= 0.01 and calls[2] - calls[1] >= 0.02  # exponential backoff
    assert len(recorder.jobs) == 1  # the hook fires once, for the final state only


def test_retries_exhausted(scheduler, recorder) -> None:
    def broken():
        raise ValueError("bad data")

    job = scheduler.wait(scheduler.submit("broken", broken, params={}, retries=1).id, 5)
    assert job.state == "failed" and job.attempts == 2 and job.error == "ValueError: bad data"
    assert [j.state for j in recorder.jobs] == ["failed"]


@settings(max_examples=15, deadline=None)
@given(failures=st.integers(0, 4), retries=st.integers(0, 4))
def test_outcome_follows_failures_and_retries(failures, retries) -> None:
    s = LocalScheduler(LocalSchedulerConfig(workers=1, backoff_s=0, max_backoff_s=0))
    try:
        count = [0]

        def fn():
            count[0] += 1
            if count[0] <= failures:
                raise RuntimeError("no")

        job = s.wait(s.submit("p", fn, params={}, retries=retries).id, 5)
    finally:
        s.close()
    assert job.state == ("succeeded" if failures <= retries else "failed")
    assert job.attempts == count[0] == min(failures, retries) + 1


def test_cancel_a_queued_job(scheduler, recorder) -> None:
    gate = threading.Event()
    blockers = [scheduler.submit("block", gate.wait, params={"timeout": 5}) for _ in range(2)]
    ran = []
    job = scheduler.submit("later", lambda: ran.append(1), params={})
    cancelled = scheduler.cancel(job.id)
    assert cancelled.state == "cancelled"
    assert scheduler.cancel(job.id) == cancelled  # idempotent
    gate.set()
    for b in blockers:
        assert scheduler.wait(b.id, 5).state == "succeeded"
    assert scheduler.wait(job.id, 1).state == "cancelled"
    assert ran == []
    assert [j.id for j in recorder.jobs].count(job.id) == 1
    with pytest.raises(errors.Conflict, match="already succeeded"):
        scheduler.cancel(blockers[0].id)


def test_cancel_a_job_waiting_to_retry(recorder) -> None:
    s = LocalScheduler(LocalSchedulerConfig(workers=1, backoff_s=10), hook=get_plugin_manager(
        load_entrypoints=False, plugins=[recorder]).hook)
    try:
        calls = []

        def fails():
            calls.append(1)
            raise OSError("down")

        job = s.submit("retrying", fails, params={}, retries=5)
        deadline = time.monotonic() + 5
        while not (calls and s.get(job.id).state == "queued"):
            assert time.monotonic() < deadline
            time.sleep(0.002)
        assert s.get(job.id).error == "OSError: down"
        assert s.cancel(job.id).state == "cancelled"
        assert s.wait(job.id, 1).state == "cancelled" and calls == [1]
    finally:
        started = time.monotonic()
        s.close()
    assert time.monotonic() - started < 1  # no backoff timer kept it alive
    assert [j.state for j in recorder.jobs] == ["cancelled"]


def test_cancel_a_running_job_cooperatively(scheduler) -> None:
    started = threading.Event()
    release = threading.Event()

    def long_job():
        started.set()
        release.wait(5)
        raise_if_cancelled()
        return {"finished": True}

    job = scheduler.submit("long", long_job, params={}, retries=3)
    assert started.wait(5)
    assert scheduler.cancel(job.id).state == "running"  # asked to stop; it stops at its next check
    release.set()
    done = scheduler.wait(job.id, 5)
    assert done.state == "cancelled" and done.attempts == 1  # and no retry after a cancellation


def test_raise_if_cancelled_is_inert_outside_jobs() -> None:
    raise_if_cancelled()


def test_unknown_jobs(scheduler) -> None:
    for call in (scheduler.get, scheduler.wait, scheduler.cancel):
        with pytest.raises(errors.NotFound, match="nope"):
            call("nope")


def test_list_newest_first(scheduler) -> None:
    ids = [scheduler.submit("n", lambda: None, params={}).id for _ in range(4)]
    assert [j.id for j in scheduler.list()] == ids[::-1]


def test_close_waits_for_running_and_cancels_queued(recorder) -> None:
    s = LocalScheduler(LocalSchedulerConfig(workers=1), hook=get_plugin_manager(
        load_entrypoints=False, plugins=[recorder]).hook)
    started = threading.Event()

    def running():
        started.set()
        time.sleep(0.1)
        return {"done": True}

    first = s.submit("first", running, params={})
    second = s.submit("second", lambda: None, params={})
    assert started.wait(5)
    s.close()
    assert s.get(first.id).state == "succeeded"
    assert s.get(second.id).state == "cancelled"
    assert sorted(j.state for j in recorder.jobs) == ["cancelled", "succeeded"]
    with pytest.raises(errors.Unavailable):
        s.submit("late", lambda: None, params={})
    s.close()  # idempotent


def test_a_failing_hook_does_not_break_the_scheduler() -> None:
    class Broken:
        @hookimpl
        def modelyard_after_job_finished(self, job):
            raise RuntimeError("observer bug")

    s = LocalScheduler(hook=get_plugin_manager(load_entrypoints=False, plugins=[Broken()]).hook)
    try:
        assert s.wait(s.submit("x", lambda: None, params={}).id, 5).state == "succeeded"
    finally:
        s.close()


def test_bad_retries_are_rejected(scheduler) -> None:
    with pytest.raises(ValueError):
        scheduler.submit("x", lambda: None, params={}, retries=-1)


def test_provider() -> None:
    (provider,) = modelyard_schedulers()
    assert provider.name == "local" and provider.slot == "scheduler"
    assert provider.config_schema is LocalSchedulerConfig
    assert LocalSchedulerConfig().workers == 2
