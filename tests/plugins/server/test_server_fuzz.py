"""Bad input never makes the server fail: random bodies and headers on the infer and register routes get a 2xx or
a 4xx problem+json answer, never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from modelyard.protocol.v2 import HEADER_LENGTH_HEADER

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
DATATYPES = ["FP32", "FP64", "FP16", "INT64", "INT32", "INT8", "UINT8", "BOOL", "BYTES", "fp32", "", "X"]

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                         st.floats(allow_nan=False), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                                 st.dictionaries(st.text(max_size=6), inner,
                                                                                 max_size=4)), max_leaves=20)
shapes = st.one_of(st.lists(st.integers(-2, 25), max_size=3), st.lists(st.integers(-(2**63), 2**64), max_size=3),
                   json_values)
tensor = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["x", "y", ""]), json_scalars), "shape": shapes,
     "datatype": st.one_of(st.sampled_from(DATATYPES), json_scalars)},
    optional={"data": st.one_of(json_values, st.lists(st.floats(allow_nan=False, width=32), max_size=45)),
              "parameters": st.one_of(st.fixed_dictionaries({"binary_data_size": st.integers(-5, 100)}),
                                      json_values)})
requests = st.fixed_dictionaries(
    {"inputs": st.one_of(st.lists(tensor, max_size=3), json_values)},
    optional={"outputs": st.one_of(st.lists(st.fixed_dictionaries(
                  {"name": st.one_of(st.sampled_from(["probability", "label", "nope"]), json_scalars)},
                  optional={"parameters": st.one_of(st.fixed_dictionaries({"binary_data": json_scalars}),
                                                    json_values)}), max_size=3), json_values),
              "parameters": st.one_of(st.fixed_dictionaries({"binary_data_output": json_scalars}), json_values),
              "id": json_scalars})
header_values = st.one_of(st.integers(-10, 10**6).map(str), st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                                                  max_size=10))


def _check(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


@FUZZ
@given(doc=requests, tail=st.binary(max_size=64), header_length=st.one_of(st.none(), st.just("exact"), header_values),
       version=st.sampled_from([None, "1", "2", "x"]))
def test_infer_never_fails_on_bad_input(client: TestClient, deployed: str, doc: dict[str, Any], tail: bytes,
                                        header_length: str | None, version: str | None) -> None:
    body = json.dumps(doc).encode() + tail
    headers = {HEADER_LENGTH_HEADER: str(len(body) - len(tail)) if header_length == "exact" else header_length}
    path = f"/v2/models/{deployed}" + (f"/versions/{version}" if version else "") + "/infer"
    _check(client.post(path, content=body, headers={k: v for k, v in headers.items() if v is not None}))


@FUZZ
@given(body=st.binary(max_size=300), content_type=st.sampled_from(
    ["application/json", "application/octet-stream", "text/plain", "", "application/json; charset=latin-1"]))
def test_infer_never_fails_on_random_bytes(client: TestClient, deployed: str, body: bytes, content_type: str) -> None:
    _check(client.post(f"/v2/models/{deployed}/infer", content=body, headers={"Content-Type": content_type}))


form_fields = st.dictionaries(
    st.sampled_from(["name", "flavor", "tags", "lineage", "alias", "description", "other"]),
    st.one_of(st.sampled_from(["fuzzed", "onnx", "{}", '{"a": "b"}', '{"a": 1}', "[]", "null", "", "A B"]),
              st.text(max_size=20)),
    max_size=6)


@FUZZ
@given(fields=form_fields, content=st.binary(max_size=200), filename=st.text(max_size=20),
       with_file=st.booleans())
def test_register_never_fails_on_bad_uploads(client: TestClient, fields: dict[str, str], content: bytes,
                                             filename: str, with_file: bool) -> None:
    files = {"file": (filename or "f", content)} if with_file else {"_": (None, "x")}
    _check(client.post("/api/v1/models", data=fields, files=files))


@FUZZ
@given(body=st.binary(max_size=300), content_type=st.sampled_from(
    ["multipart/form-data; boundary=b", "multipart/form-data", "multipart/form-data; boundary=",
     "application/json", "text/plain", ""]))
def test_register_never_fails_on_random_bodies(client: TestClient, body: bytes, content_type: str) -> None:
    _check(client.post("/api/v1/models", content=body, headers={"Content-Type": content_type}))


@FUZZ
@given(doc=json_values)
def test_register_from_uri_never_fails_on_bad_json(client: TestClient, doc: Any) -> None:
    body = json.dumps(doc).encode()  # json.dumps writes Infinity, which is not JSON: the server must say 400
    _check(client.post("/api/v1/models", content=body, headers={"Content-Type": "application/json"}))
