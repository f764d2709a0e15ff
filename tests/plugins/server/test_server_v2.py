"""The Open Inference Protocol routes through the app: health, metadata, readiness and inference (JSON and binary),
with outputs equal to onnxruntime's own."""

from __future__ import annotations

import json

import numpy as np
import pytest
from litestar.testing import TestClient
from modelyard.protocol.v2 import HEADER_LENGTH_HEADER, decode_response, encode_request
from server_models import features, ort_outputs


def _json_body(x: np.ndarray, **extra: object) -> dict:
    return {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}],
            **extra}


def test_health_and_server_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    meta = client.get("/v2").json()
    assert meta["name"] == "modelyard"
    assert meta["extensions"] == ["binary_tensor_data"]


def test_model_metadata_names_flavor_version_and_signature(client: TestClient, deployed: str) -> None:
    meta = client.get(f"/v2/models/{deployed}").json()
    assert meta == {"name": deployed, "versions": ["1"], "platform": "onnx",
                    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 20]}],
                    "outputs": [{"name": "probability", "datatype": "FP32", "shape": [-1, 1]},
                                {"name": "label", "datatype": "INT64", "shape": [-1, 1]}]}
    assert client.get(f"/v2/models/{deployed}/versions/1").json() == meta
    assert client.get(f"/v2/models/{deployed}/ready").json() == {"name": deployed, "ready": True}
    assert client.get(f"/v2/models/{deployed}/versions/1/ready").status_code == 200


def test_json_inference_equals_onnxruntime(client: TestClient, deployed: str, model_path) -> None:
    x = features(5)
    response = client.post(f"/v2/models/{deployed}/infer", json=_json_body(x, id="req-7"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    doc = response.json()
    assert doc["model_name"] == deployed and doc["model_version"] == "1" and doc["id"] == "req-7"
    expected = ort_outputs(model_path, x)
    outputs = {o["name"]: o for o in doc["outputs"]}
    assert outputs["probability"]["datatype"] == "FP32" and outputs["probability"]["shape"] == [5, 1]
    np.testing.assert_allclose(np.asarray(outputs["probability"]["data"], np.float32).reshape(5, 1),
                               expected["probability"], rtol=1e-6)
    assert outputs["label"]["datatype"] == "INT64"
    assert outputs["label"]["data"] == expected["label"].ravel().tolist()


def test_binary_request_and_binary_outputs_are_exact(client: TestClient, deployed: str, model_path) -> None:
    x = features(3, seed=4)
    body, headers = encode_request({"x": x}, binary=True, binary_outputs=True)
    response = client.post(f"/v2/models/{deployed}/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert HEADER_LENGTH_HEADER.lower() in {k.lower() for k in response.headers}
    decoded = decode_response(response.content, header_length=response.headers[HEADER_LENGTH_HEADER])
    expected = ort_outputs(model_path, x)
    np.testing.assert_array_equal(decoded.outputs["probability"], expected["probability"])
    np.testing.assert_array_equal(decoded.outputs["label"], expected["label"])


def test_requested_outputs_pick_the_outputs_and_their_encoding(client: TestClient, deployed: str) -> None:
    x = features(2)
    body = _json_body(x, outputs=[{"name": "label", "parameters": {"binary_data": True}},
                                  {"name": "probability"}])
    response = client.post(f"/v2/models/{deployed}/infer", json=body)
    assert response.status_code == 200, response.text
    header_length = int(response.headers[HEADER_LENGTH_HEADER])
    header = json.loads(response.content[:header_length])
    assert [o["name"] for o in header["outputs"]] == ["label", "probability"]
    assert "data" in header["outputs"][1] and "binary_data_size" in header["outputs"][0]["parameters"]
    assert len(response.content) - header_length == 2 * 8  # two INT64 labels follow the header

    only_label = client.post(f"/v2/models/{deployed}/infer",
                             json=_json_body(x, outputs=[{"name": "label"}])).json()
    assert [o["name"] for o in only_label["outputs"]] == ["label"]


def test_binary_data_output_parameter_makes_every_output_binary(client: TestClient, deployed: str) -> None:
    x = features(1)
    response = client.post(f"/v2/models/{deployed}/infer",
                           json=_json_body(x, parameters={"binary_data_output": True}))
    assert response.headers["content-type"] == "application/octet-stream"
    decoded = decode_response(response.content, header_length=response.headers[HEADER_LENGTH_HEADER])
    assert set(decoded.outputs) == {"probability", "label"}


def test_lenient_dtype_is_converted_like_the_python_api(client: TestClient, deployed: str, model_path) -> None:
    """FP64 data for an FP32 input is converted (as ``Platform.predict`` does), not refused."""
    x = features(2)
    body = {"inputs": [{"name": "x", "shape": [2, 20], "datatype": "FP64", "data": x.astype(np.float64).ravel().tolist()}]}
    doc = client.post(f"/v2/models/{deployed}/infer", json=body).json()
    probability = np.asarray(doc["outputs"][0]["data"], np.float32).reshape(2, 1)
    np.testing.assert_allclose(probability, ort_outputs(model_path, x)["probability"], rtol=1e-6)


def test_versioned_infer_serves_the_deployed_version_only(client: TestClient, deployed: str) -> None:
    x = features(1)
    assert client.post(f"/v2/models/{deployed}/versions/1/infer", json=_json_body(x)).status_code == 200
    response = client.post(f"/v2/models/{deployed}/versions/7/infer", json=_json_body(x))
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "7" in detail and "version 1" in detail
    assert client.get(f"/v2/models/{deployed}/versions/7").status_code == 404
    assert client.get(f"/v2/models/{deployed}/versions/7/ready").status_code == 404


@pytest.mark.parametrize("path", ["/v2/models/{name}/ready", "/v2/models/{name}"])
def test_unknown_model_is_404(client: TestClient, path: str) -> None:
    response = client.get(path.format(name="never-deployed"))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_readiness_follows_the_recorded_deployments(platform, client: TestClient, model_path) -> None:
    """Server ready ⇔ every deployment recorded as ready is served; a recorded one that is down is 503."""
    platform.registry.register("ready-check", model_path, flavor="onnx")
    platform.deploy("ready-check")
    assert client.get("/v2/health/ready").status_code == 200
    platform.runtime.undeploy("ready-check")  # the record stays, as after a crash before restore
    try:
        server = client.get("/v2/health/ready")
        assert server.status_code == 503
        assert "ready-check" in server.json()["detail"]
        model = client.get("/v2/models/ready-check/ready")
        assert model.status_code == 503
    finally:
        platform.undeploy("ready-check")
    assert client.get("/v2/health/ready").status_code == 200


def test_startup_restores_recorded_deployments(platform, model_path) -> None:
    """A new app on the same platform brings back what is recorded, before it answers anything."""
    from modelyard_plugins.server.app import create_app

    platform.registry.register("restored", model_path, flavor="onnx")
    platform.deploy("restored")
    platform.runtime.undeploy("restored")
    assert not platform.runtime.ready("restored")
    try:
        with TestClient(create_app(platform, dev=True, close_platform=False)) as fresh:
            assert fresh.get("/v2/models/restored/ready").status_code == 200
            assert fresh.post("/v2/models/restored/infer", json=_json_body(features(1))).status_code == 200
    finally:
        platform.undeploy("restored")


def test_a_version_not_served_is_refused_before_the_model_runs(client, platform, deployed) -> None:
    """``/versions/{v}/infer`` for a version the deployment does not serve is a 404 and runs nothing: the
    runtime's request counter does not move and no prediction event is emitted."""
    from modelyard import hookimpl

    seen = []

    class Watch:
        @hookimpl
        def modelyard_on_prediction(self, event):
            seen.append(event)

    platform.plugin_manager.register(Watch(), name="watch-versions")
    try:
        served = platform.runtime.status()[deployed]["version"]
        before = platform.runtime.status()[deployed]["requests"]
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 20], "data": [0.0] * 20}]}
        for wrong in (str(served + 41), "abc", "\uff11"):
            r = client.post(f"/v2/models/{deployed}/versions/{wrong}/infer", json=body)
            assert r.status_code == 404, r.text
        assert platform.runtime.status()[deployed]["requests"] == before
        assert [e for e in seen if e.ok] == []
        r = client.post(f"/v2/models/{deployed}/versions/{served}/infer", json=body)
        assert r.status_code == 200 and r.json()["model_version"] == str(served)
    finally:
        platform.plugin_manager.unregister(name="watch-versions")
