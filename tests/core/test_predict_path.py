"""The predict path's contracts (DESIGN "predict returns what happened", "observers are isolated", "the predict
path"): one async runtime call returning a Prediction, one sync facade over it, inputs checked once for the
version that runs them, the deployment looked up once, events fired in memory to each observer on its own."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelyard import hookimpl
from modelyard.errors import InvalidInput, NotFound, Unavailable
from modelyard.platform import Platform
from modelyard.types import Prediction, PredictionEvent, Principal

onnx = pytest.importorskip("onnx")

from tiny_models import linear_onnx  # noqa: E402

N = 4




class Observer:
    """Records every prediction event, and the data references it saw during the call; ``fail`` makes it raise
    after recording."""

    def __init__(self, fail: bool = False) -> None:
        self.events: list[PredictionEvent] = []
        self.data: list[tuple[Any, Any]] = []
        self.fail = fail

    @hookimpl
    def modelyard_on_prediction(self, event: PredictionEvent) -> None:
        self.events.append(event)
        self.data.append((event.inputs, event.outputs))
        if self.fail:
            raise RuntimeError("observer bug")


@pytest.fixture
def platform(tmp_path: Path):
    with Platform.from_config({"platform": {"data_dir": str(tmp_path / "data"), "log_level": "warning"}}) as p:
        p.registry.register("lin", linear_onnx(tmp_path / "lin.onnx"), flavor="onnx", alias="production")
        p.deploy("lin")
        yield p


def x_rows(n: int) -> np.ndarray:
    return np.arange(n * N, dtype=np.float32).reshape(n, N)


# --------------------------------------------------------------------------------------------- what happened
def test_predict_returns_the_outputs_and_predict_full_says_what_happened(platform) -> None:
    x = x_rows(3)
    outputs = platform.predict("lin", {"x": x})
    assert isinstance(outputs, dict) and set(outputs) == {"y"}
    np.testing.assert_allclose(outputs["y"], 2 * x)

    full = platform.predict_full("lin", {"x": x})
    assert isinstance(full, Prediction)
    assert (full.model, full.version, full.rows) == ("lin", 1, 3)
    assert full.model_s > 0 and full.queue_s >= 0
    np.testing.assert_allclose(full.outputs["y"], 2 * x)

    async def main():
        return await platform.apredict("lin", {"x": x}), await platform.apredict_full("lin", {"x": x})

    plain, whole = asyncio.run(main())
    np.testing.assert_allclose(plain["y"], 2 * x)
    assert whole.version == 1 and whole.rows == 3
    assert not hasattr(platform.runtime, "info") and not hasattr(platform.runtime, "apredict")


def test_the_answering_version_follows_a_redeploy(platform, tmp_path: Path) -> None:
    v2 = platform.registry.register("lin", linear_onnx(tmp_path / "lin3.onnx", 3.0), flavor="onnx")
    platform.deploy(f"lin:{v2.number}")
    full = platform.predict_full("lin", {"x": x_rows(1)})
    assert full.version == v2.number
    np.testing.assert_allclose(full.outputs["y"], 3 * x_rows(1))


# --------------------------------------------------------------------------------------------- events
def test_events_carry_references_to_the_data_and_the_error(platform) -> None:
    observer = Observer()
    platform.plugin_manager.register(observer, name="observer")
    inputs = {"x": x_rows(2)}
    full = platform.predict_full("lin", inputs, principal=Principal(id="alice"))
    (event,) = observer.events
    assert event.ok and (event.model, event.version, event.rows, event.principal) == ("lin", 1, 2, "alice")
    seen_inputs, seen_outputs = observer.data[0]
    assert seen_inputs is inputs and seen_outputs is full.outputs  # references, not copies
    assert event.inputs is None and event.outputs is None  # for the call only: a kept event pins no arrays
    assert event.error is None and event.error_type is None and event.latency_s > 0

    with pytest.raises(InvalidInput):
        platform.predict("lin", {"x": np.zeros((1, N + 1), np.float32)})
    with pytest.raises(NotFound):
        asyncio.run(platform.apredict("ghost", inputs))
    bad, ghost = observer.events[1:]
    assert not bad.ok and bad.error_type == "InvalidInput" and "expected shape" in bad.error
    assert observer.data[1][1] is None and observer.data[1][0]["x"].shape == (1, N + 1)
    assert bad.rows == 1 and (bad.model, bad.version) == ("", 0)
    assert ghost.deployment == "ghost" and ghost.error_type == "NotFound" and "ghost" in ghost.error
    assert "inputs" not in repr(event) and event == event  # arrays stay out of repr and equality


def test_each_observer_is_called_on_its_own(platform) -> None:
    broken, healthy = Observer(fail=True), Observer()
    platform.plugin_manager.register(healthy, name="healthy")
    platform.plugin_manager.register(broken, name="broken")  # newest first: it runs before the healthy one
    out = platform.predict("lin", {"x": x_rows(1)})
    np.testing.assert_allclose(out["y"], 2 * x_rows(1))
    assert len(broken.events) == 1 and len(healthy.events) == 1


# --------------------------------------------------------------------------------------------- once
def test_one_lookup_one_check_and_no_registry_io_per_request(platform, monkeypatch) -> None:
    from modelyard_plugins.server import v2
    from modelyard_plugins.server.app import create_app

    runtime = platform.runtime
    entry = runtime._entries["lin"]
    checks: list[int] = []
    check = entry.check
    entry.check = lambda inputs: checks.append(1) or check(inputs)

    class CountingEntries(dict):
        lookups = 0

        def get(self, key, default=None):
            CountingEntries.lookups += 1
            return super().get(key, default)

    runtime._entries = CountingEntries(runtime._entries)

    def no_io(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("registry I/O on the predict path")

    for method in ("get_deployment", "get_version", "list_deployments", "get_model", "resolve"):
        monkeypatch.setattr(platform.registry_backend, method, no_io, raising=False)
    assert not hasattr(v2, "InputAdapter")  # the route does not check inputs itself

    app = create_app(platform, dev=True, close_platform=False)
    body = json.dumps({"inputs": [{"name": "x", "shape": [2, N], "datatype": "FP32",
                                   "data": x_rows(2).ravel().tolist()}]}).encode()

    async def infer() -> tuple[int, dict]:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v2/models/lin/infer", "raw_path": b"/v2/models/lin/infer",
                 "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
                 "headers": [(b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode())], "state": {}}
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return sent[0]["status"], json.loads(sent[1]["body"])

    status, doc = asyncio.run(infer())
    assert status == 200, doc
    assert doc["model_version"] == "1"
    np.testing.assert_allclose(np.asarray(doc["outputs"][0]["data"]).reshape(2, N), 2 * x_rows(2))
    assert (CountingEntries.lookups, len(checks)) == (1, 1)
    platform.predict("lin", {"x": x_rows(1)})
    assert (CountingEntries.lookups, len(checks)) == (2, 2)


# --------------------------------------------------------------------------------------------- sync facade
def test_the_sync_facade_is_one_bridge_closed_with_the_platform(tmp_path: Path) -> None:
    with Platform.from_config({"platform": {"data_dir": str(tmp_path / "data"), "log_level": "warning"}}) as p:
        p.registry.register("lin", linear_onnx(tmp_path / "lin.onnx"), flavor="onnx")
        p.deploy("lin", batching={"max_batch_size": 8, "max_wait_ms": 50})
        results: dict[int, np.ndarray] = {}
        barrier = threading.Barrier(6)

        def call(i: int) -> None:
            barrier.wait()
            results[i] = p.predict("lin", {"x": x_rows(1) + i})["y"]

        threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        for i in range(6):
            np.testing.assert_allclose(results[i], 2 * (x_rows(1) + i))
        status = p.runtime.status()["lin"]
        assert status["batches"] < 1 + 6  # the warm-up, then shared batches: the threads joined one queue
        bridge = p.__dict__["_bridge"]
    assert bridge.closed
    with pytest.raises(Unavailable):
        p.predict("lin", {"x": x_rows(1)})


def test_a_blocking_call_from_a_running_event_loop_is_served(platform) -> None:
    async def main():
        await platform.apredict("lin", {"x": x_rows(1)})
        return platform.predict("lin", {"x": x_rows(2)})  # blocks this loop; served from a helper thread

    np.testing.assert_allclose(asyncio.run(main())["y"], 2 * x_rows(2))


# --------------------------------------------------------------------------------------------- loading
def test_the_loader_rehashes_a_cached_copy_before_trusting_it(platform) -> None:
    source = platform.bundle_source(platform.resolve_for_deploy("lin"))
    path = platform.loader.fetch(source)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == source.digest
    path.write_bytes(b"tampered")
    again = platform.loader.fetch(source)
    assert again == path and hashlib.sha256(again.read_bytes()).hexdigest() == source.digest
    model = platform.loader.load(source, {"device": "cpu"})
    try:
        np.testing.assert_allclose(model.predict({"x": x_rows(1)})["y"], 2 * x_rows(1))
    finally:
        model.close()
    with pytest.raises(Unavailable, match="locator"):
        import attrs

        platform.loader.fetch(attrs.evolve(source, locator="s3://elsewhere/blob"))
