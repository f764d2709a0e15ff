"""No 5xx from input, over a real socket: every hostile body, path, header and URI gets the right 4xx (or, for a
full disk, a 503) as problem+json naming the field — and the server keeps answering afterwards.

The app runs on uvicorn in a background thread over this module's platform (the ``platform``/``deployed``
fixtures of ``conftest.py``), as ``tests/e2e/server_harness.py`` runs it, so requests cross a real HTTP parser.
"""

from __future__ import annotations

import errno
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from modelyard import Platform
from modelyard.protocol.v2 import HEADER_LENGTH_HEADER, encode_request
from server_models import FEATURES, features

PROBLEM = "application/problem+json"
HL = HEADER_LENGTH_HEADER
DEEP = 1000


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def url(platform: Platform, deployed: str) -> Iterator[str]:
    """The app (dev mode) on uvicorn on 127.0.0.1, in a background thread; the platform outlives it."""
    import uvicorn
    from modelyard_plugins.server.app import create_app

    app = create_app(platform, dev=True, close_platform=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False,
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="hardening-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30.0) as client:
        yield client


def assert_problem(response: httpx.Response, status: int, *, contains: str = "", **members: Any) -> dict[str, Any]:
    """A problem+json answer of ``status`` whose detail contains ``contains`` and that has ``members``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["type"].startswith("urn:modelyard:problem:")
    assert contains in body["detail"], body["detail"]
    for key, value in members.items():
        assert body.get(key) == value, (key, body)
    return body


def assert_alive(http: httpx.Client, deployed: str = "logreg") -> None:
    """The server still predicts."""
    response = http.post(f"/v2/models/{deployed}/infer", json=infer_doc())
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"] == [1, 1]


def infer_doc(**overrides: Any) -> dict[str, Any]:
    tensor = {"name": "x", "shape": [1, FEATURES], "datatype": "FP32", "data": [0.25] * FEATURES, **overrides}
    return {"inputs": [tensor]}


def infer_json(tensor_json: bytes, *, extra: bytes = b"") -> bytes:
    """A request body with one hand-written tensor (for what json.dumps cannot write: 1e400, lone escapes)."""
    return b'{' + extra + b'"inputs": [' + tensor_json + b"]}"


def post_infer(http: httpx.Client, body: bytes, headers: dict[str, Any] | None = None, version: str | None = None
               ) -> httpx.Response:
    path = "/v2/models/logreg" + (f"/versions/{version}" if version else "") + "/infer"
    return http.post(path, content=body, headers={"Content-Type": "application/json", **(headers or {})})


# ------------------------------------------------------------------------------------------------ the V2 codec
def test_bytes_tensor_with_invalid_utf8_is_a_400(http: httpx.Client) -> None:
    response = post_infer(http, b'{"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["\xff"]}]}')
    assert_problem(response, 400, contains="UTF-8", input="x", type="urn:modelyard:problem:codec-error")
    assert_alive(http)


@pytest.mark.parametrize(("shape", "data", "contains"), [
    ([1] * 65, [0.5], "65 dimensions; at most 64"),
    ([2**40, 2**40, 2**40], [0.5], "more elements than an array can hold"),
    ([2**70, 1], [0.5], "more elements"),
    ([2**62, 2**62, 0], [], "dimensions too large"),
    ([-1, FEATURES], [0.5] * FEATURES, "negative dimension"),
])
def test_bad_shapes_are_422(http: httpx.Client, shape: list[int], data: list[float], contains: str) -> None:
    response = http.post("/v2/models/logreg/infer", json=infer_doc(shape=shape, data=data))
    assert_problem(response, 422, contains=contains, input="x", type="urn:modelyard:problem:invalid-input")
    assert_alive(http)


def test_a_binary_tensor_with_an_overflowing_shape_is_422(http: httpx.Client) -> None:
    raw = np.zeros(FEATURES, np.float32).tobytes()
    header = json.dumps({"inputs": [{"name": "x", "shape": [2**62, 2**62], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    response = post_infer(http, header + raw, {HL: str(len(header))})
    assert_problem(response, 422, contains="more elements", input="x")
    assert_alive(http)


@pytest.mark.parametrize(("tensor", "status", "contains", "members"), [
    (b'{"name": "x", "shape": [1, 20], "datatype": "FP32", "data": [1e400' + b",0" * 19 + b"]}", 400,
     "out of range for FP32", {"input": "x"}),
    (b'{"name": "x", "shape": [1, 20], "datatype": "FP32", "data": [1e39' + b",0" * 19 + b"]}", 400,
     "out of range for FP32", {"input": "x"}),
    (b'{"name": "x", "shape": [1, 20], "datatype": "FP64", "data": [-1e400' + b",0" * 19 + b"]}", 400,
     "out of range for FP64", {"input": "x"}),
    (b'{"name": "x", "shape": [1, 20], "datatype": "INT8", "data": [128' + b",0" * 19 + b"]}", 400,
     "out of range for INT8", {"input": "x"}),
    (b'{"name": "x", "shape": [1, 20], "datatype": "UINT8", "data": [-1' + b",0" * 19 + b"]}", 400,
     "out of range for UINT8", {"input": "x"}),
    (b'{"name": "x", "shape": [1, 20], "datatype": "INT16", "data": [32768' + b",0" * 19 + b"]}", 400,
     "out of range for INT16", {"input": "x"}),
    (b'{"name": "x", "shape": [1, 20], "datatype": "UINT32", "data": [4294967296' + b",0" * 19 + b"]}", 400,
     "out of range for UINT32", {"input": "x"}),
    (b'{"name": "x", "shape": [1, 20], "datatype": "INT64", "data": [9223372036854775808' + b",0" * 19 + b"]}",
     400, "out of range for INT64", {"input": "x"}),
    (b'{"name": "x", "shape": [1, 20], "datatype": "UINT64", "data": [18446744073709551616' + b",0" * 19 + b"]}",
     400, "out of range for UINT64", {"input": "x"}),
    # FP64 values that FP32, the model's input, cannot hold: refused, not turned into infinity
    (b'{"name": "x", "shape": [1, 20], "datatype": "FP64", "data": [1e300' + b",0" * 19 + b"]}", 422,
     "beyond the range of FP32", {"input": "x", "field": "inputs.x"}),
    (b'{"name": "x", "shape": [1, 20], "datatype": "FP64", "data": [-3.5e38' + b",0" * 19 + b"]}", 422,
     "beyond the range of FP32", {"input": "x", "field": "inputs.x"}),
])
def test_numbers_out_of_range_are_refused(http: httpx.Client, tensor: bytes, status: int, contains: str,
                                          members: dict[str, Any]) -> None:
    assert_problem(post_infer(http, infer_json(tensor)), status, contains=contains, **members)
    assert_alive(http)


def test_fp64_values_within_fp32_range_still_predict(http: httpx.Client) -> None:
    x = features(2).astype(np.float64)
    body, headers = encode_request({"x": x}, binary=False)
    response = post_infer(http, body, headers)
    assert response.status_code == 200, response.text
    # and infinities sent as FP64 stay infinities (Triton's literals): only finite overflow is refused
    tensor = b'{"name": "x", "shape": [1, 20], "datatype": "FP64", "data": [Infinity' + b",0" * 19 + b"]}"
    assert post_infer(http, infer_json(tensor)).status_code == 200


@pytest.mark.parametrize(("body", "contains"), [
    (infer_json(b'{"name": "x", "shape": [1, 20], "datatype": "FP32", "data": ' + b"[" * DEEP + b"]" * DEEP + b"}"),
     "more than 64 levels deep"),
    (infer_json(b"{}", extra=b'"parameters": {"a": ' + b"[" * DEEP + b"]" * DEEP + b"}, "),
     "more than 64 levels deep"),
    (infer_json(b"{}", extra=b'"parameters": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b", "),
     "more than 64 levels deep"),
    (b'{"inputs": ' + b"[" * 100_000, "more than 64 levels deep"),
])
def test_deep_nesting_in_infer_is_a_400(http: httpx.Client, body: bytes, contains: str) -> None:
    assert_problem(post_infer(http, body), 400, contains=contains, type="urn:modelyard:problem:codec-error")
    assert_alive(http)


@pytest.mark.parametrize(("body", "where"), [
    (infer_json(b'{"name": "\\ud800", "shape": [1, 20], "datatype": "FP32", "data": [' + b"0," * 19 + b"0]}"),
     "'inputs[0].name'"),
    (infer_json(b'{"name": "x", "shape": [1, 20], "datatype": "FP32", "data": [' + b"0," * 19 + b"0]}",
                extra=b'"id": "\\udc00", '),
     "'id'"),
    (infer_json(b'{"name": "x", "shape": [1, 20], "datatype": "FP32", "data": [' + b"0," * 19 + b"0]}",
                extra=b'"outputs": [{"name": "\\ud800"}], '),
     "'outputs[0].name'"),
])
def test_lone_surrogates_are_a_400_naming_the_field(http: httpx.Client, body: bytes, where: str) -> None:
    problem = assert_problem(post_infer(http, body), 400, contains=f"{where} is not valid Unicode")
    assert "input" not in problem  # no member holds the unencodable text
    assert_alive(http)


@pytest.mark.parametrize("value", ["+1200", "12_00", "\uff11\uff12".encode(), "0x40", "1e3", "-5", "99999999"])
def test_header_length_must_be_plain_ascii_digits_within_the_body(http: httpx.Client, value: Any) -> None:
    body = json.dumps(infer_doc()).encode()
    assert_problem(post_infer(http, body, {HL: value}), 400, contains=HL, type="urn:modelyard:problem:codec-error")
    assert_alive(http)


def test_a_full_width_version_does_not_resolve_on_v2(http: httpx.Client) -> None:
    body = json.dumps(infer_doc()).encode()
    assert post_infer(http, body, version="1").status_code == 200
    assert_problem(post_infer(http, body, version="%EF%BC%91"), 404, contains="not version")
    assert_problem(http.get("/v2/models/logreg/versions/%EF%BC%91"), 404)


# ------------------------------------------------------------------------------------------------ /api/v1
@pytest.mark.parametrize("version", ["%EF%BC%91", "%D9%A1", "%C2%B2", "+1", "1_0", "%201", "1%0A", "0x1", "01x"])
def test_version_path_segments_take_ascii_digits_only(http: httpx.Client, version: str) -> None:
    assert http.get("/api/v1/models/logreg/versions/1").status_code == 200
    assert_problem(http.get(f"/api/v1/models/logreg/versions/{version}"), 422, field="version")


@pytest.mark.parametrize("query", ["offset=%EF%BC%91", "offset=+1", "limit=1_0", "limit=%D9%A1", "offset=%201"])
def test_query_integers_take_ascii_digits_only(http: httpx.Client, query: str) -> None:
    assert_problem(http.get(f"/api/v1/models?{query}"), 400)
    assert_problem(http.get(f"/api/v1/models/logreg/versions?{query}"), 400)
    assert http.get("/api/v1/models?offset=0&limit=5").status_code == 200


@pytest.mark.parametrize("version", ["1", "\uff11", True, 1.0, None, [1]])
def test_alias_version_must_be_a_json_integer(http: httpx.Client, version: Any) -> None:
    response = http.put("/api/v1/models/logreg/aliases/hardened", json={"version": version})
    assert_problem(response, 422, contains="version", field="version", type="urn:modelyard:problem:invalid-input")
    assert http.get("/api/v1/models/logreg/aliases/hardened").status_code == 404  # nothing was set
    response = http.put("/api/v1/models/logreg/aliases/hardened", json={"version": 1})
    assert response.status_code == 200, response.text
    assert http.delete("/api/v1/models/logreg/aliases/hardened").status_code == 204


def test_tag_version_must_be_a_json_integer(http: httpx.Client) -> None:
    response = http.patch("/api/v1/models/logreg/tags", json={"tags": {"a": "b"}, "version": "1"})
    assert_problem(response, 422, field="version")
    response = http.patch("/api/v1/models/logreg/tags", json={"tags": {"a": 1}})
    assert_problem(response, 422, contains="Expected `str`, got `int`", field="tags")
    assert http.patch("/api/v1/models/logreg/tags", json={"tags": {"a": "b"}, "version": 1}).status_code == 200


@pytest.mark.parametrize("model", ["logreg:\uff11", "logreg:+1", "logreg:1_0", "logreg:\u00b2"])
def test_deploy_reference_versions_take_ascii_digits_only(http: httpx.Client, model: str) -> None:
    assert_problem(http.post("/api/v1/deployments", json={"model": model, "name": "digits"}), 422, field="version")
    assert http.get("/api/v1/deployments/digits").status_code == 404


def _register_json(http: httpx.Client, model_path: Path, **fields: Any) -> httpx.Response:
    return http.post("/api/v1/models", json={"name": "hardened", "flavor": "onnx", "uri": str(model_path), **fields})


def _deep_array() -> Any:
    value: Any = 1
    for _ in range(200):  # deeper than the limit, shallow enough for json.dumps
        value = [value]
    return value


@pytest.mark.parametrize("field", ["tags", "lineage", "options", "sample_input", "expected_output"])
def test_deep_nesting_in_register_bodies_is_a_400(http: httpx.Client, model_path: Path, field: str) -> None:
    raw = (b'{"name": "hardened", "flavor": "onnx", "uri": ' + json.dumps(str(model_path)).encode()
           + b', "' + field.encode() + b'": {"a": ' + b"[" * DEEP + b"]" * DEEP + b"}}")
    response = http.post("/api/v1/models", content=raw, headers={"Content-Type": "application/json"})
    assert_problem(response, 400, contains="more than 64 levels deep")
    assert_problem(_register_json(http, model_path, **{field: {"a": _deep_array()}}), 400, contains="64 levels")
    assert http.get("/api/v1/models/hardened").status_code == 404
    assert_alive(http)


@pytest.mark.parametrize("field", ["tags", "lineage", "options", "sample_input"])
def test_deep_nesting_in_multipart_fields_is_a_422(http: httpx.Client, model_path: Path, field: str) -> None:
    deep = '{"a": ' + "[" * DEEP + "]" * DEEP + "}"
    response = http.post("/api/v1/models", data={"name": "hardened", "flavor": "onnx", field: deep},
                         files={"file": ("m.onnx", model_path.read_bytes())})
    assert_problem(response, 422, contains="more than 64 levels deep", field=field)
    assert_alive(http)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PUT", "/api/v1/models/logreg/aliases/deep", b'{"version": ' + b"[" * DEEP + b"]" * DEEP + b"}"),
    ("PATCH", "/api/v1/models/logreg/tags", b'{"tags": ' + b"[" * DEEP + b"]" * DEEP + b"}"),
    ("POST", "/api/v1/deployments", b'{"model": "logreg", "options": {"a": ' + b"[" * DEEP + b"]" * DEEP + b"}}"),
    ("POST", "/api/v1/deployments", b'{"model": "logreg", "options": {"a": ' + b"[" * 100 + b"]" * 100 + b"}}"),
    ("POST", "/api/v1/deployments", b'{"model": ' + b'{"a": ' * DEEP + b"1" + b"}" * DEEP + b"}"),
])
def test_deep_nesting_in_other_bodies_is_a_400(http: httpx.Client, method: str, path: str, body: bytes) -> None:
    response = http.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 400, contains="64 levels")
    assert http.get("/api/v1/deployments/logreg").status_code == 200  # the deployment is as it was
    assert_alive(http)


@pytest.mark.parametrize(("lineage", "field"), [
    ({"notebook": 3}, "lineage.notebook"),
    ({"notebook": {"a": "b"}}, "lineage.notebook"),
    ({"datasets": [1, 2]}, "lineage.datasets"),
    ({"dataset": 5}, "lineage.dataset"),
    ({"source_run": ["r"]}, "lineage.source_run"),
    ({"parent_version": "\uff11"}, "lineage.parent_version"),
    ({"parent_version": 1.5}, "lineage.parent_version"),
])
def test_lineage_values_must_be_strings(http: httpx.Client, model_path: Path, lineage: dict[str, Any],
                                        field: str) -> None:
    assert_problem(_register_json(http, model_path, lineage=lineage), 422, field=field)
    response = http.post("/api/v1/models", data={"name": "hardened", "flavor": "onnx", "lineage": json.dumps(lineage)},
                         files={"file": ("m.onnx", model_path.read_bytes())})
    assert_problem(response, 422, field=field)
    assert http.get("/api/v1/models/hardened").status_code == 404


def test_names_with_a_trailing_newline_are_refused(http: httpx.Client, model_path: Path) -> None:
    assert_problem(_register_json(http, model_path, name="abc\n"), 422, field="name")
    response = http.post("/api/v1/models", data={"name": "abc\n", "flavor": "onnx"},
                         files={"file": ("m.onnx", model_path.read_bytes())})
    assert_problem(response, 422, field="name")
    assert_problem(http.post("/api/v1/deployments", json={"model": "logreg", "name": "abc\n"}), 422, field="name")
    assert_problem(_register_json(http, model_path, alias="prod\n"), 422, field="alias")
    assert_problem(_register_json(http, model_path, tags={"team\n": "x"}), 422, field="tags")
    names = [m["name"] for m in http.get("/api/v1/models").json()["items"]]
    assert "abc\n" not in names and "abc" not in names
    assert all(d["name"] != "abc\n" for d in http.get("/api/v1/deployments").json()["items"])
    assert_problem(http.get("/api/v1/models/abc%0A"), 422, field="name")


# ------------------------------------------------------------------------------------------------ registration URIs
def test_unknown_uri_scheme_is_a_422(http: httpx.Client) -> None:
    response = http.post("/api/v1/models", json={"name": "hardened", "flavor": "onnx", "uri": "nope://x/model.onnx"})
    assert_problem(response, 422, contains="unknown URL scheme 'nope://'", field="uri")
    assert_alive(http)


def test_a_scheme_whose_package_is_missing_names_it(http: httpx.Client) -> None:
    try:
        import s3fs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("s3fs is installed here, so s3:// is not missing a package")
    response = http.post("/api/v1/models", json={"name": "hardened", "flavor": "onnx", "uri": "s3://bucket/m.onnx"})
    assert_problem(response, 422, contains="s3fs", field="uri")
    assert "pip install 'modelyard[s3]'" in response.json()["detail"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_host_is_a_422(http: httpx.Client) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}/model.onnx"
    started = time.monotonic()
    response = http.post("/api/v1/models", json={"name": "hardened", "flavor": "onnx", "uri": uri})
    assert_problem(response, 422, contains="could not be read", field="uri")
    assert time.monotonic() - started < 15
    assert_alive(http)


def test_a_host_that_never_answers_times_out(http: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard import registry

    monkeypatch.setattr(registry, "REMOTE_READ_TIMEOUT_S", 0.5)
    with socket.socket() as listener:  # accepts connections, never says a word
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}/model.onnx"
        started = time.monotonic()
        response = http.post("/api/v1/models", json={"name": "hardened", "flavor": "onnx", "uri": uri})
    assert_problem(response, 422, contains="could not be read", field="uri")
    assert time.monotonic() - started < 10
    assert http.get("/api/v1/models/hardened").status_code == 404


def test_an_http_uri_still_registers(http: httpx.Client, model_path: Path) -> None:
    """The timeouts bound a silent host, not a working one: a model served over HTTP registers."""
    import functools
    from http import server as http_server

    handler = functools.partial(http_server.SimpleHTTPRequestHandler, directory=str(model_path.parent))
    with http_server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as files:
        threading.Thread(target=files.serve_forever, daemon=True).start()
        try:
            uri = f"http://127.0.0.1:{files.server_address[1]}/{model_path.name}"
            response = http.post("/api/v1/models", json={"name": "over-http", "flavor": "onnx", "uri": uri})
            assert response.status_code == 201, response.text
            missing = http.post("/api/v1/models", json={"name": "over-http", "flavor": "onnx", "uri": uri + ".nope"})
            assert_problem(missing, 422, contains="does not exist", field="uri")
        finally:
            files.shutdown()


def test_a_bad_local_path_is_a_422(http: httpx.Client) -> None:
    for uri in ["/no/such/model.onnx", "/tmp/" + "x" * 5000, "/tmp/a\u0000b"]:
        response = http.post("/api/v1/models", json={"name": "hardened", "flavor": "onnx", "uri": uri})
        assert_problem(response, 422, field="uri")


# ------------------------------------------------------------------------------------------------ a full disk
def _blobs(platform: Platform) -> set[str]:
    return set(platform.storage.list())


def _enospc(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["storage", "builder"])
@pytest.mark.parametrize("how", ["json", "upload"])
def test_a_full_disk_during_registration_is_a_503_and_records_nothing(
        http: httpx.Client, platform: Platform, model_path: Path, monkeypatch: pytest.MonkeyPatch, where: str,
        how: str) -> None:
    name = f"full-disk-{how}-{where}"
    before = _blobs(platform)
    if where == "storage":
        monkeypatch.setattr(type(platform.storage), "put", _enospc)  # an attrs class with slots
    else:
        builder = platform.builders["onnx"]

        def build(source: Any, *, options: Any, workdir: Path) -> Any:
            (workdir / "half-written").write_bytes(b"\0" * 100)
            _enospc()

        monkeypatch.setattr(builder, "build", build)
    if how == "json":
        response = _register_json(http, model_path, name=name)
    else:
        response = http.post("/api/v1/models", data={"name": name, "flavor": "onnx"},
                             files={"file": ("m.onnx", model_path.read_bytes())})
    assert_problem(response, 503, contains="insufficient storage", type="urn:modelyard:problem:unavailable")
    monkeypatch.undo()
    assert http.get(f"/api/v1/models/{name}").status_code == 404
    assert _blobs(platform) == before
    assert not list(platform.tmp_dir.glob("build-*")) and not list(platform.tmp_dir.glob("upload-*"))
    audit = http.get("/api/v1/audit", params={"resource": f"models/{name}"}).json()["items"]
    assert audit and audit[0]["outcome"] == "error" and "insufficient storage" in audit[0]["details"]["error"]
    assert_alive(http)
    assert _register_json(http, model_path, name=name).status_code == 201  # and it works with space again


def test_a_full_disk_during_an_upload_is_a_503(http: httpx.Client, platform: Platform, model_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard_plugins.server import uploads

    class FullDisk(type(Path())):  # type: ignore[misc]
        def open(self, *args: Any, **kwargs: Any) -> Any:
            handle = super().open(*args, **kwargs)

            class Writer:
                def write(self, data: bytes) -> int:
                    raise OSError(errno.ENOSPC, "No space left on device")

                def close(self) -> None:
                    handle.close()

            return Writer()

    monkeypatch.setattr(uploads, "Path", FullDisk)
    response = http.post("/api/v1/models", data={"name": "full-upload", "flavor": "onnx"},
                         files={"file": ("m.onnx", model_path.read_bytes())})
    assert_problem(response, 503, contains="insufficient storage")
    monkeypatch.undo()
    assert not list(platform.tmp_dir.glob("upload-*"))
    assert http.get("/api/v1/models/full-upload").status_code == 404
    assert_alive(http)


# ------------------------------------------------------------------------------------------------ OpenAPI
def test_openapi_describes_the_v2_infer_body_and_answer(http: httpx.Client) -> None:
    doc = http.get("/schema/openapi.json").json()
    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        operation = doc["paths"][path]["post"]
        body = operation["requestBody"]
        assert body["required"] is True
        assert set(body["content"]) == {"application/json", "application/octet-stream"}
        request = body["content"]["application/json"]["schema"]
        assert request["required"] == ["inputs"]
        assert set(request["properties"]) == {"id", "parameters", "inputs", "outputs"}
        tensor = request["properties"]["inputs"]["items"]
        assert set(tensor["properties"]) == {"name", "shape", "datatype", "parameters", "data"}
        assert tensor["properties"]["shape"]["maxItems"] == 64
        assert "FP32" in tensor["properties"]["datatype"]["enum"]
        assert set(request["properties"]["outputs"]["anyOf"][0]["items"]["properties"]) == {"name", "parameters"}
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert {"model_name", "outputs"} <= set(answer["required"])
        assert "$ref" not in json.dumps(request) + json.dumps(answer)
    alias = doc["paths"]["/api/v1/models/{name}/aliases/{alias}"]["put"]["requestBody"]
    assert alias["content"]["application/json"]["schema"]["properties"]["version"]["type"] == "integer"
    register = doc["paths"]["/api/v1/models"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(register)


# ------------------------------------------------------------------------------------------------ the request class
def test_bounded_json_request_refuses_deep_bodies_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """``BoundedJSONRequest`` is what bounds the bodies Litestar parses itself (``data: JSONBody[...]``)."""
    import litestar.connection.request as litestar_request
    from litestar import Litestar, post
    from litestar.params import JSONBody
    from litestar.testing import TestClient
    from modelyard_plugins.server.problems import EXCEPTION_HANDLERS
    from modelyard_plugins.server.schemas import BoundedJSONRequest

    @post("/echo", status_code=200)
    async def echo(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        return data

    app = Litestar([echo], request_class=BoundedJSONRequest, exception_handlers=EXCEPTION_HANDLERS)
    parsed: list[bytes] = []
    decode = litestar_request.decode_json

    def spy(raw: Any, *args: Any, **kwargs: Any) -> Any:
        parsed.append(bytes(raw))
        return decode(raw, *args, **kwargs)

    with TestClient(app) as client:
        assert client.post("/echo", json={"a": [[1]]}).json() == {"a": [[1]]}
        monkeypatch.setattr(litestar_request, "decode_json", spy)
        for body in (b'{"a": ' + b"[" * DEEP + b"]" * DEEP + b"}", b'{"a": ' + b"[" * 65 + b"]" * 65 + b"}"):
            response = client.post("/echo", content=body, headers={"Content-Type": "application/json"})
            assert_problem(response, 400, contains="more than 64 levels deep")
        assert parsed == []  # refused before any parser saw it
        ok = b'{"a": ' + b"[" * 63 + b"]" * 63 + b"}"
        assert client.post("/echo", content=ok, headers={"Content-Type": "application/json"}).status_code == 200
        assert parsed == [ok]  # the spy does see what Litestar parses


def test_problem_answers_survive_what_no_handler_expects() -> None:
    """A RecursionError is a 400, a full disk a 503, an unencodable detail is escaped: never a second error."""
    from litestar import Litestar, get
    from litestar.testing import TestClient
    from modelyard.errors import InvalidInput
    from modelyard_plugins.server.problems import EXCEPTION_HANDLERS

    @get("/deep")
    async def deep() -> None:
        raise RecursionError("maximum recursion depth exceeded while decoding")

    @get("/full")
    async def full() -> None:
        raise OSError(errno.EDQUOT, "Disk quota exceeded", "/secret/path")

    @get("/other-oserror")
    async def other() -> None:
        raise OSError(errno.EIO, "I/O error")

    @get("/surrogate")
    async def surrogate() -> None:
        raise InvalidInput("name \ud800 is bad", field="inputs.\udfff")

    app = Litestar([deep, full, other, surrogate], exception_handlers=EXCEPTION_HANDLERS)
    with TestClient(app) as client:
        assert_problem(client.get("/deep"), 400, contains="nests values too deeply")
        body = assert_problem(client.get("/full"), 503, contains="insufficient storage",
                              type="urn:modelyard:problem:unavailable")
        assert "/secret/path" not in json.dumps(body)
        assert_problem(client.get("/other-oserror"), 500)
        body = assert_problem(client.get("/surrogate"), 422, contains="name \\ud800 is bad")
        assert body["field"] == "inputs.\\udfff"
