"""The local scheduler: job kinds run by name with JSON params, state transitions, retries with backoff, wait,
cancel, and the job-finished hook.

Every job kind here comes from a test plugin registered in a fresh plugin manager (STYLE 17): :class:`Kinds`
offers the kinds a test gives it, each a function of the params' keys.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelyard import errors, hookimpl
from modelyard.hookspecs.scheduler import Scheduler
from modelyard.jobs import JobKind, JobKinds, job_from_json, job_to_json
from modelyard.plugins import get_plugin_manager
from modelyard.providers import ProviderContext
from modelyard_plugins.local import modelyard_schedulers
from modelyard_plugins.local.scheduler import (
    MAX_RETRIES,
    LocalScheduler,
    LocalSchedulerConfig,
    raise_if_cancelled,
)


class Recorder:
    """A test plugin collecting every finished job."""

    def __init__(self) -> None:
        self.jobs = []

    @hookimpl
    def modelyard_after_job_finished(self, job):
        self.jobs.append(job)


class Kinds:
    """A test plugin offering the job kinds it is given."""

    def __init__(self, *kinds: JobKind) -> None:
        self.kinds = kinds

    @hookimpl
    def modelyard_job_kinds(self):
        return list(self.kinds)


def kind(name: str, fn, **options) -> JobKind:
    """A job kind calling ``fn(**params)``."""
    return JobKind(name=name, run=lambda params, ctx: fn(**params), **options)


@attrs.frozen(kw_only=True)
class AddParams:
    """The ``add`` kind's params."""

    a: int
    b: int = 0


def add(params: AddParams, ctx) -> dict:
    """The ``add`` kind: a typed sum, and which job computed it."""
    return {"sum": params.a + params.b, "job": ctx.job.id, "attempt": ctx.job.attempts}


ADD = JobKind(name="add", run=add, params_schema=AddParams, description="add two integers")


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def make(recorder):
    """``make(*kinds, **config)`` → a local scheduler running ``kinds`` (and ``add``) from a fresh plugin manager."""
    made = []

    def make(*kinds: JobKind, **config) -> LocalScheduler:
        pm = get_plugin_manager(load_entrypoints=False, plugins=[recorder, Kinds(ADD, *kinds)])
        settings = {"workers": 2, "backoff_s": 0.01, "max_backoff_s": 0.05, **config}
        s = LocalScheduler(LocalSchedulerConfig(**settings), kinds=JobKinds.from_plugin_manager(pm), hook=pm.hook)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def scheduler(make):
    return make()


def test_a_job_kind_runs_by_name_and_its_result_is_recorded(scheduler, recorder) -> None:
    assert isinstance(scheduler, Scheduler)
    job = scheduler.submit("add", {"a": 1, "b": 2})
    assert (job.state, job.kind, job.params, job.attempts, job.started_at) == ("queued", "add", {"a": 1, "b": 2}, 0,
                                                                                None)
    done = scheduler.wait(job.id, timeout=5)
    assert done.state == "succeeded" and done.result == {"sum": 3, "job": job.id, "attempt": 1}
    assert done.attempts == 1 and done.error is None
    assert done.created_at <= done.started_at <= done.finished_at == done.updated_at
    assert scheduler.get(job.id) == done
    assert recorder.jobs == [done]
    assert job_from_json(job_to_json(done)) == done  # what the scheduler records is plain data


def test_unknown_kinds_and_bad_params_are_refused_before_queuing(scheduler, recorder) -> None:
    with pytest.raises(errors.InvalidInput) as info:
        scheduler.submit("addd", {"a": 1})
    assert info.value.field == "kind" and "did you mean 'add'" in str(info.value)
    for params, field in (({"a": "1"}, "params.a"), ({"b": 2}, "params.a"), ({"a": 1, "c": 2}, "params.c"),
                          ({"a": 1, "b": {1, 2}}, "params.b"), ([1, 2], "params")):
        with pytest.raises(errors.InvalidInput) as info:
            scheduler.submit("add", params)
        assert info.value.field == field, params
    with pytest.raises(errors.InvalidInput) as info:
        scheduler.submit("add", {"a": 1}, retries=MAX_RETRIES + 1)
    assert info.value.field == "retries"
    assert scheduler.list() == [] and recorder.jobs == []


def test_results_that_are_not_mappings(make) -> None:
    s = make(kind("none", lambda: None), kind("value", lambda: 42))
    a = s.submit("none")
    b = s.submit("value", {})
    assert s.wait(a.id, 5).result is None
    assert s.wait(b.id, 5).result == {"value": 42}


def test_a_result_that_is_not_json_fails_the_job(make) -> None:
    s = make(kind("leaky", lambda: {"path": Path("/tmp")}))
    job = s.wait(s.submit("leaky").id, 5)
    assert job.state == "failed" and job.result is None
    assert job.error.startswith("InvalidInput: result.path: a PosixPath is not JSON-serialisable")


def test_states_while_running(make) -> None:
    gate = threading.Event()
    s = make(kind("slow", lambda: gate.wait(5) and None))
    job = s.submit("slow")
    deadline = time.monotonic() + 5
    while s.get(job.id).state != "running":
        assert time.monotonic() < deadline
        time.sleep(0.002)
    assert s.wait(job.id, timeout=0.01).state == "running"  # the timeout passes, the record comes back
    gate.set()
    assert s.wait(job.id, 5).state == "succeeded"


def test_retries_with_backoff_then_success(make, recorder) -> None:
    calls: list[float] = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError(f"attempt {len(calls)}")
        return {"ok": True}

    s = make(kind("flaky", flaky))
    job = s.wait(s.submit("flaky", retries=3).id, 5)
    assert job.state == "succeeded" and job.attempts == 3 and job.retries == 3 and job.result == {"ok": True}
    assert calls[1] - calls[0] >= 0.01 and calls[2] - calls[1] >= 0.02  # exponential backoff
    assert len(recorder.jobs) == 1  # the hook fires once, for the final state only


def test_retries_exhausted(make, recorder) -> None:
    def broken():
        raise ValueError("bad data")

    s = make(kind("broken", broken))
    job = s.wait(s.submit("broken", retries=1).id, 5)
    assert job.state == "failed" and job.attempts == 2 and job.error == "ValueError: bad data"
    assert [j.state for j in recorder.jobs] == ["failed"]


@settings(max_examples=15, deadline=None)
@given(failures=st.integers(0, 4), retries=st.integers(0, 4))
def test_outcome_follows_failures_and_retries(failures, retries) -> None:
    count = [0]

    def fn():
        count[0] += 1
        if count[0] <= failures:
            raise RuntimeError("no")

    s = LocalScheduler(LocalSchedulerConfig(workers=1, backoff_s=0, max_backoff_s=0), kinds=JobKinds.of(kind("p", fn)))
    try:
        job = s.wait(s.submit("p", retries=retries).id, 5)
    finally:
        s.close()
    assert job.state == ("succeeded" if failures <= retries else "failed")
    assert job.attempts == count[0] == min(failures, retries) + 1


def test_cancel_a_queued_job(make, recorder) -> None:
    gate = threading.Event()
    ran = []
    s = make(kind("block", gate.wait), kind("later", lambda: ran.append(1)))
    blockers = [s.submit("block", {"timeout": 5}) for _ in range(2)]
    job = s.submit("later")
    cancelled = s.cancel(job.id)
    assert cancelled.state == "cancelled" and cancelled.finished_at is not None
    assert s.cancel(job.id) == cancelled  # idempotent
    gate.set()
    for b in blockers:
        assert s.wait(b.id, 5).state == "succeeded"
    assert s.wait(job.id, 1).state == "cancelled"
    assert ran == []
    assert [j.id for j in recorder.jobs].count(job.id) == 1
    with pytest.raises(errors.Conflict, match="already succeeded"):
        s.cancel(blockers[0].id)


def test_cancel_a_job_waiting_to_retry(make, recorder) -> None:
    calls = []

    def fails():
        calls.append(1)
        raise OSError("down")

    s = make(kind("retrying", fails), workers=1, backoff_s=10)
    try:
        job = s.submit("retrying", retries=5)
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


@pytest.mark.parametrize("check", ["context", "module"])
def test_cancel_a_running_job_cooperatively(make, check) -> None:
    started = threading.Event()
    release = threading.Event()

    def long_job(params, ctx):
        started.set()
        release.wait(5)
        ctx.raise_if_cancelled() if check == "context" else raise_if_cancelled()
        return {"finished": True}

    s = make(JobKind(name="long", run=long_job))
    job = s.submit("long", retries=3)
    assert started.wait(5)
    assert s.cancel(job.id).state == "running"  # asked to stop; it stops at its next check
    release.set()
    done = s.wait(job.id, 5)
    assert done.state == "cancelled" and done.attempts == 1  # and no retry after a cancellation
    expected = f"job {job.id} was cancelled" if check == "context" else "the job was cancelled"
    assert done.error == f"JobCancelled: {expected}"


def test_raise_if_cancelled_is_inert_outside_jobs() -> None:
    raise_if_cancelled()


def test_a_kind_gone_by_the_time_the_job_runs_fails_it(recorder) -> None:
    gate = threading.Event()
    kinds = Kinds(kind("block", gate.wait), kind("later", lambda: None))
    pm = get_plugin_manager(load_entrypoints=False, plugins=[recorder, kinds])
    s = LocalScheduler(LocalSchedulerConfig(workers=1), kinds=JobKinds.from_plugin_manager(pm), hook=pm.hook)
    try:
        s.submit("block", {"timeout": 5})
        job = s.submit("later")
        pm.unregister(kinds)  # the plugin goes away while the job waits for a worker
        gate.set()
        done = s.wait(job.id, 5)
    finally:
        s.close()
    assert done.state == "failed" and done.error.startswith("InvalidInput: job kind 'later' is not installed")


def test_unknown_jobs(scheduler) -> None:
    for call in (scheduler.get, scheduler.wait, scheduler.cancel):
        with pytest.raises(errors.NotFound, match="nope"):
            call("nope")


def test_list_newest_first(scheduler) -> None:
    ids = [scheduler.submit("add", {"a": i}).id for i in range(4)]
    assert [j.id for j in scheduler.list()] == ids[::-1]


def test_close_waits_for_running_and_cancels_queued(make, recorder) -> None:
    started = threading.Event()

    def running():
        started.set()
        time.sleep(0.1)
        return {"done": True}

    s = make(kind("first", running), kind("second", lambda: None), workers=1)
    first = s.submit("first")
    second = s.submit("second")
    assert started.wait(5)
    s.close()
    assert s.get(first.id).state == "succeeded"
    assert s.get(second.id).state == "cancelled"
    assert sorted(j.state for j in recorder.jobs) == ["cancelled", "succeeded"]
    with pytest.raises(errors.Unavailable):
        s.submit("second")
    s.close()  # idempotent


def test_a_failing_hook_does_not_break_the_scheduler() -> None:
    class Broken:
        @hookimpl
        def modelyard_after_job_finished(self, job):
            raise RuntimeError("observer bug")

    pm = get_plugin_manager(load_entrypoints=False, plugins=[Broken(), Kinds(ADD)])
    s = LocalScheduler(kinds=JobKinds.from_plugin_manager(pm), hook=pm.hook)
    try:
        assert s.wait(s.submit("add", {"a": 1}).id, 5).state == "succeeded"
    finally:
        s.close()


@pytest.mark.parametrize("retries", [-1, True, 1.5, "2"])
def test_bad_retries_are_rejected(scheduler, retries) -> None:
    with pytest.raises(errors.InvalidInput, match="retries"):
        scheduler.submit("add", {"a": 1}, retries=retries)


def test_the_factory_runs_the_kinds_of_the_plugin_manager(tmp_path) -> None:
    pm = get_plugin_manager(load_entrypoints=False, plugins=[Kinds(ADD)])
    seen = []
    platform = object()
    ctx = ProviderContext(slot="scheduler", provider="local", data_dir=tmp_path, hook=pm.hook,
                          platform=platform, plugin_manager=pm)  # type: ignore[arg-type]
    s = LocalScheduler.from_config(LocalSchedulerConfig(), ctx)
    try:
        assert s.wait(s.submit("add", {"a": 2}).id, 5).result["sum"] == 2
        pm.register(Kinds(JobKind(name="where", run=lambda params, ctx: seen.append(ctx.platform))))
        assert s.wait(s.submit("where").id, 5).state == "succeeded"  # a plugin registered after assembly
        assert seen == [platform]
    finally:
        s.close()


def test_provider() -> None:
    (provider,) = modelyard_schedulers()
    assert provider.name == "local" and provider.slot == "scheduler"
    assert provider.config_schema is LocalSchedulerConfig
    assert LocalSchedulerConfig().workers == 2
