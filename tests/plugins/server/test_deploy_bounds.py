"""Every numeric field of a deployment has an upper bound: out-of-range, non-finite and wrongly typed values are
a 422 naming the field (never a 500, never a deploy that hangs every request), and nothing is recorded."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from modelyard.types import MAX_BATCH_SIZE, MAX_REPLICAS, MAX_WAIT_MS, BatchingConfig


@pytest.fixture
def registered(client: TestClient, model_path: Any) -> str:
    with model_path.open("rb") as fh:
        r = client.post("/api/v1/models", files={"file": (model_path.name, fh, "application/octet-stream")},
                        data={"name": "bounded", "flavor": "onnx"})
    assert r.status_code == 201, r.text
    return "bounded"


@pytest.mark.parametrize(("body", "field"), [
    ({"batching": {"max_wait_ms": 1e300}}, "max_wait_ms"),
    ({"batching": {"max_wait_ms": -1}}, "max_wait_ms"),
    ({"batching": {"max_wait_ms": MAX_WAIT_MS + 1}}, "max_wait_ms"),
    ({"batching": {"max_batch_size": 0}}, "max_batch_size"),
    ({"batching": {"max_batch_size": MAX_BATCH_SIZE + 1}}, "max_batch_size"),
    ({"batching": {"max_batch_size": 2**64}}, "max_batch_size"),
    ({"replicas": 2**64}, "replicas"),
    ({"replicas": MAX_REPLICAS + 1}, "replicas"),
    ({"replicas": 0}, "replicas"),
])
def test_out_of_range_deployment_fields_are_422(client: TestClient, registered: str, body: dict, field: str) -> None:
    r = client.post("/api/v1/deployments", json={"model": registered, **body})
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in r.text
    assert client.get("/api/v1/deployments").json()["items"] == []
    assert client.get("/v2/health/ready").status_code == 200


def test_a_bounded_deploy_still_works(client: TestClient, registered: str) -> None:
    r = client.post("/api/v1/deployments", json={"model": registered, "replicas": MAX_REPLICAS,
                                                 "batching": {"max_batch_size": MAX_BATCH_SIZE,
                                                              "max_wait_ms": MAX_WAIT_MS}})
    assert r.status_code == 201, r.text
    assert r.json()["replicas"] == MAX_REPLICAS


@settings(max_examples=200, deadline=None)
@given(size=st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=True)),
       wait=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.booleans()))
def test_batching_config_accepts_exactly_the_documented_range(size: Any, wait: Any) -> None:
    size_ok = type(size) is int and 1 <= size <= MAX_BATCH_SIZE
    wait_ok = type(wait) in (int, float) and not math.isnan(wait) and 0 <= wait <= MAX_WAIT_MS
    try:
        BatchingConfig(max_batch_size=size, max_wait_ms=wait)
    except ValueError as exc:
        assert not (size_ok and wait_ok), exc
    else:
        assert size_ok and wait_ok
