"""The server over a real socket: register through the SDK (a streamed multipart upload), deploy, and predict
through the SDK and through the standard Triton client, JSON and binary — outputs equal onnxruntime's own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from modelyard import errors
from modelyard.client import AsyncClient, Client
from modelyard.types import BatchingConfig, Lineage
from server_harness import ort_outputs, server_model_path, server_url  # noqa: F401  (fixtures)

X = np.random.default_rng(3).normal(size=(6, 20)).astype(np.float32)


@pytest.fixture(scope="module")
def deployed(server_url: str, server_model_path: Path) -> str:  # noqa: F811
    """``churn`` registered through the SDK with an alias and deployed from it."""
    with Client(server_url) as client:
        version = client.register("churn", server_model_path, flavor="onnx", tags={"team": "growth"},
                                  lineage={"code_ref": "git:abc"}, alias="production", description="e2e")
        assert version.number == 1 and version.aliases == ("production",)
        deployment = client.deploy("churn@production", batching={"max_batch_size": 8, "max_wait_ms": 1})
        assert deployment.state == "ready" and deployment.version == 1
    return "churn"


def test_sdk_predictions_equal_onnxruntime(server_url: str, deployed: str, server_model_path: Path) -> None:  # noqa: F811
    expected = ort_outputs(server_model_path, X)
    with Client(server_url) as client:
        for binary in (True, False):
            out = client.predict(deployed, {"x": X}, binary=binary)
            np.testing.assert_allclose(out["probability"], expected["probability"], rtol=1e-6)
            np.testing.assert_array_equal(out["label"], expected["label"])
        exact = client.predict(deployed, {"x": X}, binary=True)
        np.testing.assert_array_equal(exact["probability"], expected["probability"])  # binary is bit-exact


def test_sdk_registry_reads(server_url: str, deployed: str) -> None:  # noqa: F811
    with Client(server_url) as client:
        assert client.get_version("churn@production").number == 1
        assert client.get_version("churn:1").lineage == Lineage(code_ref="git:abc")
        assert client.get_model("churn").aliases == {"production": 1}
        assert [m.name for m in client.list_models(prefix="ch").items] == ["churn"]
        assert client.search(tags={"team": "growth"}).total == 1
        assert [d.name for d in client.deployments()] == ["churn"]
        assert client.get_deployment("churn").batching == BatchingConfig(max_batch_size=8, max_wait_ms=1.0)
        assert client.ready() is True
        assert "server" in {p["name"] for p in client.plugins()["plugins"]}
        assert client.set_tags("churn", {"owner": "ml"}).tags == {"owner": "ml"}


def test_sdk_raises_modelyard_errors(server_url: str, deployed: str, tmp_path: Path) -> None:  # noqa: F811
    with Client(server_url) as client:
        with pytest.raises(errors.NotFound, match="nope"):
            client.get_model("nope")
        with pytest.raises(errors.InvalidInput) as info:
            client.predict(deployed, {"x": X[:, :5]})
        assert info.value.field == "inputs.x" and info.value.status == 422
        with pytest.raises(errors.NotFound, match="serves version 1"):
            client.predict(deployed, {"x": X}, version=3)
        with pytest.raises(errors.InvalidInput, match="cobol"):
            client.register("m", __file__, flavor="cobol")
        big = tmp_path / "big.onnx"
        big.write_bytes(b"\0" * (1024 * 1024 + 1))  # the server's upload limit is 1 MiB
        with pytest.raises(errors.InvalidInput) as too_big:
            client.register("big", big, flavor="onnx")
        assert too_big.value.status == 413


def test_async_client(server_url: str, deployed: str, server_model_path: Path) -> None:  # noqa: F811
    async def run() -> None:
        async with AsyncClient(server_url) as client:
            results = await asyncio.gather(*(client.predict(deployed, {"x": X[i:i + 1]}) for i in range(len(X))))
            assert await client.ready()
            with pytest.raises(errors.NotFound):
                await client.get_deployment("nope")
            version = await client.register("async-model", server_model_path, flavor="onnx")
            assert version.model == "async-model"
        probabilities = np.concatenate([r["probability"] for r in results])
        np.testing.assert_allclose(probabilities, ort_outputs(server_model_path, X)["probability"], rtol=1e-6)

    asyncio.run(run())


@pytest.mark.parametrize("binary", [False, True])
def test_triton_client(server_url: str, deployed: str, server_model_path: Path, binary: bool) -> None:  # noqa: F811
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    expected = ort_outputs(server_model_path, X)
    client = triton.InferenceServerClient(server_url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(deployed) and client.is_model_ready(deployed, "1")
        assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
        meta = client.get_model_metadata(deployed)
        assert meta["platform"] == "onnx" and meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 20]}]

        inp = triton.InferInput("x", list(X.shape), "FP32")
        inp.set_data_from_numpy(X, binary_data=binary)
        outputs = [triton.InferRequestedOutput("probability", binary_data=binary),
                   triton.InferRequestedOutput("label", binary_data=binary)]
        result = client.infer(deployed, [inp], outputs=outputs, request_id="t-1")
        np.testing.assert_allclose(result.as_numpy("probability"), expected["probability"], rtol=1e-6)
        np.testing.assert_array_equal(result.as_numpy("label"), expected["label"])
        assert result.get_response()["id"] == "t-1"

        everything = client.infer(deployed, [inp], model_version="1")  # no outputs named: all, binary
        np.testing.assert_allclose(everything.as_numpy("probability"), expected["probability"], rtol=1e-6)

        bad = triton.InferInput("features", list(X.shape), "FP32")
        bad.set_data_from_numpy(X, binary_data=binary)
        with pytest.raises(InferenceServerException) as info:
            client.infer(deployed, [bad])
        assert "features" in info.value.message() and info.value.status() == "422"
    finally:
        client.close()
