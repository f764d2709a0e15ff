"""Build options and validation samples on ``POST /api/v1/models``: the form fields and JSON keys ``options``,
``sample_input`` and ``expected_output`` reach the flavor's builder (a TorchScript archive registers with
``options["input_spec"]``), a wrong expected output is a 422 build error naming the output, a field that is not a
JSON object (or a tensor that is not an array) is a 422 naming it — and ``Client``/``AsyncClient`` send the same
fields, numpy arrays included."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from modelyard import errors
from modelyard.client import AsyncClient, Client
from modelyard.converter import to_json
from modelyard.types import ArtifactRef, ModelVersion
from server_models import features, ort_outputs

PROBLEM_JSON = "application/problem+json"
FIELDS = ("options", "sample_input", "expected_output")
#: What the TorchScript model below takes; TorchScript archives record no dtypes or shapes.
LINEAR_SPEC = [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]

#: Any JSON value but an object.
_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=8)
NON_OBJECTS = st.one_of(_scalars, st.lists(st.recursive(_scalars, lambda c: st.lists(c, max_size=3)
                                                        | st.dictionaries(st.text(max_size=3), c, max_size=2)),
                                           max_size=4))


def _upload(client: TestClient, path: Path, **fields: str) -> httpx.Response:
    with path.open("rb") as fh:
        return client.post("/api/v1/models", files={"file": (path.name, fh, "application/octet-stream")},
                           data=fields)


def _problem(response: httpx.Response, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    return response.json()


def _in_process(client: TestClient) -> httpx.BaseTransport:
    class InProcess(httpx.BaseTransport):  # Litestar's test transport has no close()
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return client._transport.handle_request(request)  # type: ignore[attr-defined]

    return InProcess()


@pytest.fixture(scope="module")
def linear_script(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A seeded 4 → 2 linear layer saved as a TorchScript archive, and the module itself (for expected outputs)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.Linear(4, 2).eval()
    path = tmp_path_factory.mktemp("torchscript") / "linear.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, and still what users ship
        torch.jit.save(torch.jit.script(module), str(path))
    return path, module


def _linear(module: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()


# ------------------------------------------------------------------------------------------------ samples
def test_multipart_sample_and_expected_output_validate_the_build(client: TestClient, model_path: Path) -> None:
    x = features(3)
    expected = ort_outputs(model_path, x)
    response = _upload(client, model_path, name="sampled", flavor="onnx",
                       sample_input=json.dumps({"x": x.tolist()}),
                       expected_output=json.dumps({k: v.tolist() for k, v in expected.items()}))
    assert response.status_code == 201, response.text
    validation = response.json()["metadata"]["validation"]
    assert validation["ok"] is True and validation["input"] == "sample"
    assert sorted(validation["compared_outputs"]) == ["label", "probability"]
    # Without a sample the build runs on a generated input and compares nothing.
    plain = _upload(client, model_path, name="sampled", flavor="onnx").json()["metadata"]["validation"]
    assert (plain["input"], plain["compared_outputs"]) == ("generated", [])


@pytest.mark.parametrize("transport", ["multipart", "json"])
def test_wrong_expected_output_is_a_422_build_error_naming_it(client: TestClient, platform, model_path: Path,
                                                              transport: str) -> None:
    name = f"mismatch-{transport}"
    x = features(2)
    wrong = {"probability": (ort_outputs(model_path, x)["probability"] + 0.5).tolist()}
    if transport == "multipart":
        response = _upload(client, model_path, name=name, flavor="onnx", sample_input=json.dumps({"x": x.tolist()}),
                           expected_output=json.dumps(wrong))
    else:
        response = client.post("/api/v1/models", json={"name": name, "flavor": "onnx", "uri": model_path.as_uri(),
                                                       "sample_input": {"x": x.tolist()}, "expected_output": wrong})
    body = _problem(response)
    assert body["type"] == "urn:modelyard:problem:build-error"
    assert "output 'probability' differs from the expected output" in body["detail"]
    assert client.get(f"/api/v1/models/{name}").status_code == 404  # nothing recorded
    assert list(platform.tmp_dir.iterdir()) == []

    unknown = _upload(client, model_path, name=name, flavor="onnx", expected_output=json.dumps({"score": [[1.0]]}))
    assert "expected output 'score' is not produced by the model" in _problem(unknown)["detail"]


# ------------------------------------------------------------------------------------------------ refusals
@settings(max_examples=30, deadline=None)
@given(field=st.sampled_from(FIELDS), value=NON_OBJECTS)
def test_a_form_field_that_is_not_a_json_object_is_a_422_naming_it(client: TestClient, model_path: Path,
                                                                   field: str, value: Any) -> None:
    body = _problem(_upload(client, model_path, name="never", flavor="onnx", **{field: json.dumps(value)}))
    assert body["type"] == "urn:modelyard:problem:invalid-input"
    assert body["field"] == field and repr(field) in body["detail"] and "JSON object" in body["detail"]


@pytest.mark.parametrize("field", FIELDS)
def test_a_form_field_that_is_not_json_is_a_422_naming_it(client: TestClient, model_path: Path, field: str) -> None:
    body = _problem(_upload(client, model_path, name="never", flavor="onnx", **{field: "{input_spec: nope"}))
    assert body["field"] == field and repr(field) in body["detail"]


@settings(max_examples=30, deadline=None)
@given(field=st.sampled_from(FIELDS), value=NON_OBJECTS.filter(lambda v: v is not None))
def test_a_json_key_that_is_not_an_object_is_a_422_naming_it(client: TestClient, model_path: Path, field: str,
                                                             value: Any) -> None:
    response = client.post("/api/v1/models", json={"name": "never", "flavor": "onnx", "uri": model_path.as_uri(),
                                                   field: value})
    body = _problem(response)
    assert body["field"] == field and f"$.{field}" in body["detail"]


@pytest.mark.parametrize(("tensor", "why"), [([[1.0, 2.0], [3.0]], "not an array"), ([[1.0, None]], "null"),
                                             ({"nested": [1]}, "null or objects")])
@pytest.mark.parametrize("field", ["sample_input", "expected_output"])
def test_a_tensor_that_is_not_an_array_is_a_422_naming_it(client: TestClient, model_path: Path, field: str,
                                                          tensor: Any, why: str) -> None:
    for response in (
        _upload(client, model_path, name="never", flavor="onnx", **{field: json.dumps({"x": tensor})}),
        client.post("/api/v1/models", json={"name": "never", "flavor": "onnx", "uri": model_path.as_uri(),
                                            field: {"x": tensor}}),
    ):
        body = _problem(response)
        assert body["field"] == f"{field}.x" and why in body["detail"], body
    assert client.get("/api/v1/models/never").status_code == 404


# ------------------------------------------------------------------------------------------------ options
@pytest.mark.parametrize("transport", ["multipart", "json"])
def test_options_reach_the_builder(client: TestClient, linear_script: tuple[Path, Any], transport: str) -> None:
    """A TorchScript archive carries no input types: without options['input_spec'] the build is refused, with it
    the version records that signature, deploys and predicts what torch computes."""
    path, module = linear_script
    name = f"script-{transport}"

    def register(**extra: Any) -> httpx.Response:
        if transport == "multipart":
            return _upload(client, path, name=name, flavor="torch", **{k: json.dumps(v) for k, v in extra.items()})
        return client.post("/api/v1/models", json={"name": name, "flavor": "torch", "uri": path.as_uri(), **extra})

    assert "pass options['input_spec']" in _problem(register())["detail"]
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    response = register(options={"input_spec": LINEAR_SPEC, "output_names": ["y"]},
                        sample_input={"x": x.tolist()}, expected_output={"y": _linear(module, x).tolist()})
    assert response.status_code == 201, response.text
    version = response.json()
    assert version["signature"]["inputs"] == LINEAR_SPEC
    assert [o["name"] for o in version["signature"]["outputs"]] == ["y"]
    assert version["metadata"]["validation"]["compared_outputs"] == ["y"]

    assert client.post("/api/v1/deployments", json={"model": name}).status_code == 201
    with Client("http://testserver", transport=_in_process(client)) as sdk:
        np.testing.assert_allclose(sdk.predict(name, {"x": x})["y"], _linear(module, x), rtol=1e-6)


# ------------------------------------------------------------------------------------------------ the SDK
def test_client_register_sends_options_and_numpy_samples(client: TestClient, linear_script: tuple[Path, Any]
                                                         ) -> None:
    path, module = linear_script
    x = np.random.default_rng(2).normal(size=(2, 4)).astype(np.float32)
    with Client("http://testserver", transport=_in_process(client)) as sdk:
        version = sdk.register("sdk-script", path, flavor="torch", options={"input_spec": LINEAR_SPEC},
                               sample_input={"x": x}, expected_output={"output_0": _linear(module, x)})
        assert version.number == 1
        assert version.metadata["validation"]["compared_outputs"] == ["output_0"]
        with pytest.raises(errors.BuildError, match="output 'output_0' differs") as info:
            sdk.register("sdk-script", path, flavor="torch", options={"input_spec": LINEAR_SPEC},
                         sample_input={"x": x}, expected_output={"output_0": _linear(module, x) + 1})
        assert info.value.status == 422
        assert sdk.list_versions("sdk-script").total == 1


def test_async_client_register_and_register_uri(client: TestClient, platform, linear_script: tuple[Path, Any],
                                                model_path: Path) -> None:
    from modelyard_plugins.server.app import create_app

    path, _ = linear_script
    x = features(2)
    expected = ort_outputs(model_path, x)
    transport = httpx.ASGITransport(app=create_app(platform, dev=True, close_platform=False))

    async def main() -> tuple[ModelVersion, ModelVersion]:
        async with AsyncClient("http://testserver", transport=transport) as sdk:
            by_uri = await sdk.register_uri("async-uri", model_path.as_uri(), flavor="onnx", sample_input={"x": x},
                                            expected_output={"probability": expected["probability"]})
            uploaded = await sdk.register("async-script", path, flavor="torch",
                                          options={"input_spec": LINEAR_SPEC, "output_names": ["y"]})
            with pytest.raises(errors.BuildError, match="'probability'"):
                await sdk.register_uri("async-uri", model_path.as_uri(), flavor="onnx", sample_input={"x": x},
                                       expected_output={"probability": expected["probability"] * 2})
            return by_uri, uploaded

    by_uri, uploaded = anyio.run(main)
    assert by_uri.metadata["validation"]["compared_outputs"] == ["probability"]
    assert to_json(uploaded)["signature"]["inputs"] == LINEAR_SPEC and uploaded.signature.outputs[0].name == "y"


#: What a mock server answers a registration with.
REGISTERED = to_json(ModelVersion(model="m", number=1, flavor="torch", artifact=ArtifactRef(digest="0" * 64, size=1)))


def test_client_wire_format() -> None:
    """Multipart fields and JSON keys carry JSON objects, numpy arrays as nested lists; absent arguments are
    not sent; what JSON cannot carry is refused before any request."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=REGISTERED)

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    with Client("http://h", transport=httpx.MockTransport(handler)) as sdk:
        sdk.register_uri("m", "s3://b/m.pt", flavor="torch", options={"input_spec": LINEAR_SPEC, "k": np.int64(3)},
                         sample_input={"x": x}, expected_output={"y": [[1.5]], "s": np.array([b"a", b"b"])})
        sdk.register_uri("m", "s3://b/m.pt", flavor="torch")
        for bad, field in (({"sample_input": {"x": np.array([np.nan])}}, "sample_input"),
                           ({"options": {"f": object()}}, "options"), ({"expected_output": [1, 2]}, "expected_output")):
            with pytest.raises(errors.InvalidInput) as info:
                sdk.register_uri("m", "s3://b/m.pt", flavor="torch", **bad)
            assert info.value.field == field
    first, second = (json.loads(r.content) for r in seen)
    assert first["options"] == {"input_spec": LINEAR_SPEC, "k": 3}
    assert first["sample_input"] == {"x": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]}
    assert first["expected_output"] == {"y": [[1.5]], "s": ["a", "b"]}
    assert not set(FIELDS) & set(second)
    assert len(seen) == 2


def test_client_multipart_fields(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=REGISTERED)

    model = tmp_path / "m.pt"
    model.write_bytes(b"weights")
    with Client("http://h", transport=httpx.MockTransport(handler)) as sdk:
        sdk.register("m", model, flavor="torch", options={"module_factory": "pkg.mod:make"},
                     sample_input={"x": np.ones((1, 2), np.float32)})
    content = seen[0].read().decode()
    assert 'name="options"\r\n\r\n{"module_factory": "pkg.mod:make"}\r\n' in content
    assert 'name="sample_input"\r\n\r\n{"x": [[1.0, 1.0]]}\r\n' in content
    assert 'name="expected_output"' not in content


def test_openapi_describes_the_register_fields(client: TestClient) -> None:
    description = client.get("/schema/openapi.json").json()["paths"]["/api/v1/models"]["post"]["description"]
    for field in ("`file`", *(f"`{f}`" for f in FIELDS), "input_spec", "nested lists", "422"):
        assert field in description, field
