"""``modelyard.converter``: every domain record survives ``to_json`` → ``json.dumps`` → ``json.loads`` →
``from_json`` unchanged (hypothesis), the JSON keeps the wire shape the server has always answered with, and
reading is strict — no coercion, no naive timestamps, no unknown keys unless asked to ignore them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelyard import serialize
from modelyard.converter import from_json, to_json
from modelyard.datatypes import DATATYPES
from modelyard.errors import InvalidInput
from modelyard.types import (
    MAX_BATCH_SIZE,
    MAX_INT,
    MAX_WAIT_MS,
    ArtifactRef,
    AuditEvent,
    BatchingConfig,
    Deployment,
    Job,
    Lineage,
    Model,
    ModelVersion,
    Page,
    ServingState,
    Signature,
    TensorSpec,
)

# --------------------------------------------------------------------------------------------- strategies
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # no lone surrogates: JSON text
some_text = text.filter(bool)
names = st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True)
aliases = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)
counts = st.integers(0, MAX_INT)
timestamps = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1),
                          timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30))]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=8)
json_objects = st.dictionaries(text, json_values, max_size=4)
tags = st.dictionaries(st.from_regex(r"[a-z][a-z0-9._/:-]{0,10}", fullmatch=True), text, max_size=3)

tensor_specs = st.builds(TensorSpec, some_text, st.sampled_from(DATATYPES),
                         st.tuples(st.integers(-1, 4096)) | st.lists(st.integers(-1, 4096), max_size=4).map(tuple))
signatures = st.builds(Signature, st.lists(tensor_specs, max_size=3).map(tuple),
                       st.lists(tensor_specs, max_size=3).map(tuple))
artifacts = st.builds(ArtifactRef, digest=st.from_regex(r"[0-9a-f]{64}", fullmatch=True), size=counts)
lineages = st.builds(
    Lineage, source_run=st.none() | some_text, datasets=st.lists(text, max_size=3).map(tuple),
    code_ref=st.none() | some_text, parent_version=st.none() | st.integers(1, MAX_INT),
    # the JSON form is flat: extra keys beside the known ones, so an extra key cannot be a known one
    extra=st.dictionaries(text.filter(lambda k: k not in Lineage.KNOWN), text, max_size=3))
models = st.builds(Model, name=names, description=text, tags=tags, latest_version=counts,
                   aliases=st.dictionaries(aliases, st.integers(1, MAX_INT), max_size=3), created_at=timestamps,
                   updated_at=timestamps)
versions = st.builds(ModelVersion, model=names, number=st.integers(1, MAX_INT), flavor=some_text,
                     artifact=artifacts, signature=st.none() | signatures,
                     requirements=st.lists(text, max_size=3).map(tuple), tags=tags, lineage=lineages,
                     metadata=json_objects, aliases=st.lists(aliases, max_size=3).map(tuple), description=text,
                     created_at=timestamps)
batchings = st.builds(BatchingConfig, max_batch_size=st.integers(1, MAX_BATCH_SIZE),
                      max_wait_ms=st.floats(0, MAX_WAIT_MS) | st.integers(0, int(MAX_WAIT_MS)),
                      wait_when_idle=st.booleans())
states = st.sampled_from(["pending", "ready", "failed", "stopped"])
deployments = st.builds(Deployment, name=names, model=names, version=st.integers(1, MAX_INT), runtime=some_text,
                        requested_ref=text, batching=st.none() | batchings, replicas=st.integers(1, 1024),
                        options=json_objects, state=states, message=text, generation=counts,
                        created_at=timestamps, updated_at=timestamps)
serving = st.builds(ServingState, process=some_text, deployment=names, host=text, pid=counts, model=text,
                    version=counts, generation=counts, state=states, message=text, seen_at=timestamps)
audit_events = st.builds(AuditEvent, action=some_text, resource=some_text, principal=text,
                         outcome=st.sampled_from(["ok", "denied", "error"]), source=text, details=json_objects,
                         at=timestamps)
jobs = st.builds(Job, id=some_text, kind=st.from_regex(r"[a-z][a-z0-9_-]{0,8}(\.[a-z]{1,8})?", fullmatch=True),
                 params=json_objects, state=st.sampled_from(["queued", "running", "succeeded", "failed", "cancelled"]),
                 attempts=counts, retries=counts, error=st.none() | text, result=st.none() | json_objects,
                 created_at=timestamps, updated_at=timestamps, started_at=st.none() | timestamps,
                 finished_at=st.none() | timestamps)


def pages(items: st.SearchStrategy[Any]) -> st.SearchStrategy[Page[Any]]:
    return st.builds(Page, st.lists(items, max_size=3).map(tuple), counts, counts, st.none() | counts)


RECORDS: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (TensorSpec, tensor_specs), (Signature, signatures), (ArtifactRef, artifacts), (Lineage, lineages),
    (Model, models), (ModelVersion, versions), (BatchingConfig, batchings), (Deployment, deployments),
    (ServingState, serving), (AuditEvent, audit_events), (Job, jobs), (Page[Model], pages(models)),
    (Page[ModelVersion], pages(versions)), (Page[AuditEvent], pages(audit_events)),
]


# --------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize(("cls", "records"), RECORDS, ids=lambda v: getattr(v, "__name__", None) or str(v))
def test_every_record_round_trips_through_json_text(cls: Any, records: st.SearchStrategy[Any]) -> None:
    @settings(max_examples=40, deadline=None)
    @given(record=records)
    def round_trip(record: Any) -> None:
        data = to_json(record)
        text_form = json.dumps(data, allow_nan=False)  # JSON-ready: no custom encoder needed
        again = from_json(cls, json.loads(text_form))
        assert again == record
        assert to_json(again) == data

    round_trip()


# --------------------------------------------------------------------------------------------- the wire shape
WHEN = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
SIGNATURE = Signature((TensorSpec("x", "FP32", (-1, 3)),), (TensorSpec("y", "FP32", (-1,)),))
VERSION = ModelVersion(model="churn", number=2, flavor="onnx", artifact=ArtifactRef(digest="ab" * 32, size=7),
                       signature=SIGNATURE, requirements=("onnxruntime",), tags={"team": "growth"},
                       lineage=Lineage(source_run="run-7", datasets=("s3://d/x",), extra={"owner": "bo"}),
                       metadata={"validation": {"ok": True}}, aliases=("production",), description="d",
                       created_at=WHEN)


def test_a_version_keeps_its_wire_names_and_order() -> None:
    data = to_json(VERSION)
    assert list(data) == ["model", "version", "flavor", "artifact", "signature", "requirements", "tags", "lineage",
                          "aliases", "metadata", "description", "created_at"]
    assert data == {
        "model": "churn", "version": 2, "flavor": "onnx",
        "artifact": {"digest": "ab" * 32, "size": 7, "uri": "sha256:" + "ab" * 32},
        "signature": {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
                      "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}]},
        "requirements": ["onnxruntime"], "tags": {"team": "growth"},
        "lineage": {"source_run": "run-7", "datasets": ["s3://d/x"], "owner": "bo"}, "aliases": ["production"],
        "metadata": {"validation": {"ok": True}}, "description": "d", "created_at": "2024-05-01T12:00:00.123456+00:00",
    }  # fmt: skip


def test_the_other_records_keep_their_wire_keys() -> None:
    model = Model(name="churn", aliases={"production": 2}, created_at=WHEN, updated_at=WHEN)
    assert list(to_json(model)) == ["name", "description", "tags", "latest_version", "aliases", "created_at",
                                    "updated_at"]
    deployment = Deployment(name="churn", model="churn", version=2, runtime="local",
                            batching=BatchingConfig(max_batch_size=8, max_wait_ms=1.0), created_at=WHEN,
                            updated_at=WHEN)
    assert list(to_json(deployment)) == ["name", "model", "version", "runtime", "requested_ref", "batching",
                                         "replicas", "options", "state", "message", "generation", "created_at",
                                         "updated_at"]
    assert to_json(deployment)["batching"] == {"max_batch_size": 8, "max_wait_ms": 1.0, "wait_when_idle": False}
    assert list(to_json(AuditEvent(action="a", resource="r", at=WHEN))) == [
        "at", "principal", "action", "resource", "outcome", "source", "details"]
    assert list(to_json(Page((model,), total=1))) == ["items", "total", "offset", "next_offset"]
    assert list(to_json(ServingState(process="p", deployment="churn", seen_at=WHEN))) == [
        "process", "deployment", "host", "pid", "model", "version", "generation", "state", "message", "seen_at"]
    assert list(to_json(Job(id="j", kind="train"))) == [
        "id", "kind", "state", "params", "result", "error", "attempts", "retries", "created_at", "updated_at",
        "started_at", "finished_at"]


def test_timestamps_are_utc_iso_8601() -> None:
    five_thirty = dt.timezone(dt.timedelta(hours=5, minutes=30))
    model = Model(name="m", created_at=WHEN.astimezone(five_thirty), updated_at=WHEN.replace(tzinfo=None))
    data = to_json(model)
    assert data["created_at"] == data["updated_at"] == "2024-05-01T12:00:00.123456+00:00"  # naive is taken as UTC
    assert from_json(Model, {**data, "created_at": "2024-05-01T12:00:00Z"}).created_at == WHEN.replace(microsecond=0)


def test_the_servers_functions_are_the_converters() -> None:
    deployment = Deployment(name="churn", model="churn", version=2, runtime="local", generation=3)
    state = ServingState(process="p", deployment="churn", version=2, generation=3)
    assert serialize.version_json(VERSION) == to_json(VERSION)
    assert serialize.deployment_json(deployment) == to_json(deployment)
    assert serialize.page_json(Page((VERSION,), total=1), serialize.version_json) == to_json(Page((VERSION,), total=1))
    assert serialize.serving_json(state) == to_json(state)
    assert serialize.serving_json(state, deployment) == {**to_json(state), "converged": True}
    assert serialize.serving_json(state, attrs.evolve(deployment, generation=4))["converged"] is False


# --------------------------------------------------------------------------------------------- strictness
@pytest.mark.parametrize(("change", "field"), [
    ({"version": "2"}, "model_version.version"),                 # no str → int
    ({"flavor": 3}, "model_version.flavor"),                     # no int → str
    ({"created_at": "2024-05-01T12:00:00"}, "model_version.created_at"),  # a timestamp needs its offset
    ({"created_at": 1714564800}, "model_version.created_at"),
    ({"tags": ["team"]}, "model_version.tags"),
    ({"requirements": "onnxruntime"}, "model_version.requirements"),  # a string is not a list of strings
    ({"artifact": {"digest": "ab" * 32, "size": 7, "uri": "sha256:00"}}, "model_version.artifact"),
    ({"lineage": {"parent_version": "3"}}, "model_version.lineage"),
    ({"owner": "bo"}, "model_version"),                          # unknown keys are refused
])  # fmt: skip
def test_reading_is_strict(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput, match="not a model version record") as info:
        from_json(ModelVersion, {**to_json(VERSION), **change})
    assert info.value.field == field


def test_unknown_keys_may_be_ignored_and_other_mistakes_still_not() -> None:
    newer = {**to_json(VERSION), "owner": "bo", "artifact": {**to_json(VERSION)["artifact"], "region": "eu"}}
    assert from_json(ModelVersion, newer, extra="ignore") == VERSION
    with pytest.raises(InvalidInput):
        from_json(ModelVersion, {**newer, "version": "2"}, extra="ignore")


def test_what_is_not_a_record_is_refused() -> None:
    with pytest.raises(InvalidInput, match="expected a JSON object") as info:
        from_json(Model, [to_json(Model(name="m"))])
    assert info.value.field == "model"
    with pytest.raises(InvalidInput, match="not a valid name"):
        from_json(Model, {**to_json(Model(name="m")), "name": "../etc"})
    with pytest.raises(TypeError):
        to_json({"name": "m"})
