"""Jobs are plain data: job kinds and their params checks, the Job record, its JSON round trip, the catalogue."""

from __future__ import annotations

import datetime as dt
import json
from typing import Literal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelyard import hookimpl
from modelyard.errors import InvalidInput, PluginError
from modelyard.jobs import JobCancelled, JobContext, JobKind, JobKinds, job_from_json, job_to_json
from modelyard.plugins import get_plugin_manager
from modelyard.types import MAX_JSON_DEPTH, Job


@attrs.frozen(kw_only=True)
class TrainParams:
    """A job kind's params schema."""

    model: str
    epochs: int = 10
    rate: float = 0.1
    mode: Literal["full", "incremental"] = "full"
    tags: list[str] = attrs.field(factory=list)


def _noop(params, ctx):
    return None


TRAIN = JobKind(name="train", run=_noop, params_schema=TrainParams, description="train a model")


# --------------------------------------------------------------------------------------------- the record
@pytest.mark.parametrize("name", ["train", "batch_predict", "acme.retrain", "a-b.c_d"])
def test_job_kind_names(name):
    assert JobKind(name=name, run=_noop).name == name


@pytest.mark.parametrize("name", ["", "Train", "1st", "a b", "../x", "acme.", ".x", "x" * 65, 3])
def test_bad_job_kind_names_are_refused(name):
    with pytest.raises(ValueError, match="job kind name"):
        JobKind(name=name, run=_noop)


def test_a_job_kind_needs_a_callable_and_an_attrs_schema():
    with pytest.raises(TypeError):
        JobKind(name="x", run="not callable")
    with pytest.raises(TypeError, match="params_schema must be an attrs class"):
        JobKind(name="x", run=_noop, params_schema=dict)
    with pytest.raises(TypeError):
        JobKind(name="x", run=_noop, validate=42)


# --------------------------------------------------------------------------------------------- params
def test_params_are_converted_into_the_schema():
    data, typed = TRAIN.check_params({"model": "churn", "epochs": 3, "tags": ("a", "b")})
    assert typed == TrainParams(model="churn", epochs=3, tags=["a", "b"])
    assert data == {"model": "churn", "epochs": 3, "tags": ["a", "b"]}  # what the record keeps: JSON only
    assert TRAIN.check_params({"model": "m", "rate": 1})[1].rate == 1  # an integer is a number


@pytest.mark.parametrize(("params", "field", "message"), [
    ({}, "params.model", "missing required key; expected a string"),
    ({"model": 42}, "params.model", "expected a string, got the integer 42"),
    ({"model": "m", "epochs": "3"}, "params.epochs", "expected an integer, got the string '3'"),
    ({"model": "m", "epochs": True}, "params.epochs", "expected an integer"),
    ({"model": "m", "mode": "half"}, "params.mode", "expected one of 'full', 'incremental'"),
    ({"model": "m", "epoch": 3}, "params.epoch", "unknown key — did you mean 'epochs'?"),
    ({"model": "m", "tags": "abc"}, "params.tags", "expected a list of strings"),
])
def test_params_that_do_not_fit_the_schema_name_the_field(params, field, message):
    with pytest.raises(InvalidInput) as info:
        TRAIN.check_params(params)
    assert info.value.field == field
    assert f"params of job kind 'train': {field}: {message}" in str(info.value)


def test_every_schema_problem_is_reported():
    with pytest.raises(InvalidInput) as info:
        TRAIN.check_params({"epochs": "x", "colour": "red"})
    assert info.value.field in {"params.model", "params.epochs", "params.colour"}  # the first of them
    for part in ("params.model", "params.epochs", "params.colour"):
        assert part in str(info.value)


@pytest.mark.parametrize(("params", "field", "message"), [
    ({"model": {1, 2}}, "params.model", "a set is not JSON-serialisable"),
    ({"paths": ["a", b"b"]}, "params.paths[1]", "a bytes is not JSON-serialisable"),
    ({"deep": {"x": float("nan")}}, "params.deep.x", "nan has no JSON form"),
    ({"inf": float("inf")}, "params.inf", "inf has no JSON form"),
    ({"when": dt.datetime(2024, 1, 1)}, "params.when", "a datetime is not JSON-serialisable"),
    ({"m": {1: "a"}}, "params.m", "key 1 is not a string"),
    ([("model", "m")], "params", "expected a JSON object, got a list"),
    ("model=m", "params", "expected a JSON object, got a str"),
])
def test_params_that_are_not_json_name_the_field(params, field, message):
    for kind in (TRAIN, JobKind(name="free", run=_noop)):
        with pytest.raises(InvalidInput, match=message) as info:
            kind.check_params(params)
        assert info.value.field == field


def test_nesting_is_bounded():
    deep: object = "leaf"
    for _ in range(MAX_JSON_DEPTH + 2):
        deep = [deep]
    with pytest.raises(InvalidInput, match="nested deeper"):
        JobKind(name="free", run=_noop).check_params({"x": deep})


def test_without_a_schema_the_kind_gets_the_json():
    kind = JobKind(name="free", run=_noop)
    assert kind.check_params(None) == ({}, {})
    assert kind.check_params({"a": (1, 2.5, None, True, {"b": "c"})}) == ({"a": [1, 2.5, None, True, {"b": "c"}]},) * 2


def test_the_validator_runs_after_the_schema():
    def positive(p: TrainParams) -> None:
        if p.epochs < 1:
            raise ValueError(f"epochs must be positive, got {p.epochs}")

    def named(p: TrainParams) -> None:
        if p.model == "nope":
            raise InvalidInput("model 'nope' does not exist", field="params.model")

    kind = attrs.evolve(TRAIN, validate=lambda p: (positive(p), named(p)))
    assert kind.check_params({"model": "m", "epochs": 1})[1].epochs == 1
    with pytest.raises(InvalidInput, match="params of job kind 'train': epochs must be positive, got 0") as info:
        kind.check_params({"model": "m", "epochs": 0})
    assert info.value.field == "params"
    with pytest.raises(InvalidInput, match="does not exist") as info:
        kind.check_params({"model": "nope"})
    assert info.value.field == "params.model"
    with pytest.raises(InvalidInput, match=r"params\.epochs"):  # the schema first: the validator never sees "x"
        kind.check_params({"model": "m", "epochs": "x"})


# --------------------------------------------------------------------------------------------- Job and JSON
def test_a_job_holds_json_only():
    job = Job(id="j1", kind="train", params={"paths": ("a", "b")}, result={"n": 1})
    assert job.params == {"paths": ["a", "b"]} and job.result == {"n": 1}
    with pytest.raises(InvalidInput, match=r"params\.x: a set") as info:
        Job(id="j1", kind="train", params={"x": {1}})
    assert info.value.field == "params.x"
    with pytest.raises(InvalidInput, match="result: expected a JSON object"):
        Job(id="j1", kind="train", result=[1])
    with pytest.raises(TypeError):
        job.params["paths"] = []  # type: ignore[index]  # read-only, like every record's mappings


def test_the_json_form():
    at = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    job = Job(id="j1", kind="train", params={"model": "churn"}, state="failed", attempts=2, retries=1,
              error="ValueError: bad data", created_at=at, updated_at=at, started_at=at, finished_at=at)
    assert job_to_json(job) == {
        "id": "j1", "kind": "train", "params": {"model": "churn"}, "state": "failed", "attempts": 2, "retries": 1,
        "error": "ValueError: bad data", "result": None, "created_at": "2024-05-01T12:00:00.123456+00:00",
        "updated_at": "2024-05-01T12:00:00.123456+00:00", "started_at": "2024-05-01T12:00:00.123456+00:00",
        "finished_at": "2024-05-01T12:00:00.123456+00:00"}
    assert job.done and not attrs.evolve(job, state="running").done


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
timestamps = st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-5, minutes=-30))]))


@settings(max_examples=60, deadline=None)
@given(params=st.dictionaries(st.text(), json_values, max_size=5),
       result=st.none() | st.dictionaries(st.text(), json_values, max_size=3),
       state=st.sampled_from(["queued", "running", "succeeded", "failed", "cancelled"]),
       attempts=st.integers(0, 100), retries=st.integers(0, 100), error=st.none() | st.text(),
       created=timestamps, started=st.none() | timestamps)
def test_a_job_round_trips_through_json_unchanged(params, result, state, attempts, retries, error, created,
                                                  started):
    job = Job(id="0123abc", kind="acme.train", params=params, result=result, state=state, attempts=attempts,
              retries=retries, error=error, created_at=created, updated_at=created, started_at=started)
    text = json.dumps(job_to_json(job), allow_nan=False)  # plain JSON: no custom encoder needed
    again = job_from_json(json.loads(text))
    assert again == job
    assert job_to_json(again) == job_to_json(job)


@pytest.fixture
def job_json():
    return job_to_json(Job(id="j1", kind="train", params={"model": "m"}))


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"state": "paused"}, "job.state", "paused"),
    ({"attempts": "1"}, "job.attempts", "expected int"),
    ({"created_at": "2024-01-01T00:00:00"}, "job.created_at", "expected datetime"),
    ({"finished_at": 1714564800}, "job.finished_at", ""),
    ({"owner": "alice"}, "job", "extra fields found (owner)"),
    ({"id": None}, "job.id", ""),
])
def test_json_that_is_not_a_job_is_refused(job_json, change, field, message):
    with pytest.raises(InvalidInput, match="not a job record") as info:
        job_from_json({**job_json, **change})
    assert info.value.field == field and message in str(info.value)


def test_a_job_without_an_id_or_with_bad_params_is_refused(job_json):
    with pytest.raises(InvalidInput, match=r"required field missing @ job\.id"):
        job_from_json({k: v for k, v in job_json.items() if k != "id"})
    with pytest.raises(InvalidInput, match=r"params\.x: nan has no JSON form"):
        job_from_json({**job_json, "params": {"x": float("nan")}})
    with pytest.raises(InvalidInput, match="expected a JSON object"):
        job_from_json([job_json])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- context, catalogue
def test_the_context_raises_once_cancelled():
    cancelled = [False]
    ctx = JobContext(job=Job(id="j1", kind="train"), is_cancelled=lambda: cancelled[0])
    ctx.raise_if_cancelled()
    cancelled[0] = True
    with pytest.raises(JobCancelled, match="job j1 was cancelled"):
        ctx.raise_if_cancelled()
    JobContext(job=Job(id="j2", kind="train")).raise_if_cancelled()  # never cancelled by default


class Trainer:
    """A test plugin offering one job kind."""

    def __init__(self, name: str = "train") -> None:
        self.name = name

    @hookimpl
    def modelyard_job_kinds(self):
        """Offer the kind."""
        yield attrs.evolve(TRAIN, name=self.name)


def test_the_catalogue_follows_the_plugin_manager():
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("trainer", Trainer())])
    kinds = JobKinds.from_plugin_manager(pm)
    assert kinds.names() == ["train"] and kinds.entries()["train"].plugin == "trainer"
    late = Trainer("evaluate")
    pm.register(late, name="late")  # after assembly: a monitor, a test plugin
    assert kinds.names() == ["evaluate", "train"] and kinds.get("evaluate").params_schema is TrainParams
    pm.unregister(late)
    assert kinds.names() == ["train"]


def test_a_clash_stops_the_catalogue_at_assembly_and_later():
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("one", Trainer()), ("two", Trainer())])
    with pytest.raises(PluginError, match="job kind 'train' is offered by plugin 'one'"):
        JobKinds.from_plugin_manager(pm)
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("one", Trainer())])
    kinds = JobKinds.from_plugin_manager(pm)
    pm.register(Trainer(), name="two")
    with pytest.raises(PluginError, match="plugin 'two'"):
        kinds.get("train")


def test_an_unknown_kind_names_the_installed_ones():
    kinds = JobKinds.of(TRAIN, attrs.evolve(TRAIN, name="evaluate"))
    assert kinds.get("train") is TRAIN
    with pytest.raises(InvalidInput) as info:
        kinds.get("trian")
    assert info.value.field == "kind"
    assert str(info.value) == "job kind 'trian' is not installed (installed: evaluate, train) — did you mean 'train'?"
    with pytest.raises(InvalidInput, match=r"job kind 42 is not installed \(installed: none\)"):
        JobKinds().get(42)
    with pytest.raises(ValueError, match="two job kinds are named 'train'"):
        JobKinds.of(TRAIN, TRAIN)
