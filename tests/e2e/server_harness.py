"""Fixtures and helpers for the server's socket-level tests (imported by ``test_server_*.py``; every fixture name
starts with ``server_``): a real ONNX model, the app on uvicorn in a background thread on a free port, and
``modelyard serve`` as a subprocess in its own process group. Every wait is bounded."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

FEATURES = 20
START_TIMEOUT_S = 60.0


def build_logreg(path: Path) -> Path:
    """A 20-feature logistic regression: ``probability`` (FP32 ``[N, 1]``) and ``label`` (INT64 ``[N, 1]``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["logit"]),
         helper.make_node("Sigmoid", ["logit"], ["probability"]),
         helper.make_node("Greater", ["logit", "zero"], ["positive"]),
         helper.make_node("Cast", ["positive"], ["label"], to=TensorProto.INT64)],
        "logreg",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["N", 1])],
        initializer=[numpy_helper.from_array(rng.normal(size=(FEATURES, 1)).astype(np.float32), "w"),
                     numpy_helper.from_array(np.array([0.25], np.float32), "b"),
                     numpy_helper.from_array(np.array([0.0], np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def ort_outputs(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """onnxruntime's own answer for ``x``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"x": x}), strict=True))


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, *, timeout: float = START_TIMEOUT_S, proc: subprocess.Popen[bytes] | None = None) -> float:
    """Poll ``url/v2/health/ready`` until 200; the seconds it took. Fails when ``proc`` exits or time runs out."""
    started = time.monotonic()
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() - started < timeout:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"the server exited with {proc.returncode}")
            try:
                if http.get(f"{url}/v2/health/ready").status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise AssertionError(f"{url} was not ready within {timeout:.0f}s")


@pytest.fixture(scope="session")
def server_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The logistic regression as an ONNX file, built once."""
    return build_logreg(tmp_path_factory.mktemp("server-e2e-model") / "logreg.onnx")


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``create_app`` on uvicorn in a background thread, on a real socket; yields the base URL.

    The upload limit is 1 MiB so that the limit can be tested over the socket.
    """
    import uvicorn
    from modelyard import Platform
    from modelyard_plugins.server.app import create_app

    data = tmp_path_factory.mktemp("server-e2e-data")
    platform = Platform.from_config({"platform": {"data_dir": str(data), "log_level": "warning"},
                                     "server": {"max_upload_mb": 1}})
    app = create_app(platform, dev=True)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False,
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="server-e2e-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        platform.close()


class ServeProcess:
    """``python -m modelyard -c CONFIG serve --dev --port PORT`` in its own process group."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> ServeProcess:
        """Start the process (output appended to the log file)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as out:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "modelyard", "-c", str(self.config), "serve", "--dev", "--port",
                 str(self.port), *extra], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> int | None:
        """Send ``sig`` to the process group and wait (bounded); the exit status, None if it did not exit."""
        if self.proc is None:
            return None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL whatever is left in the group."""
        if self.proc is not None and self.proc.poll() is None and self.kill(signal.SIGTERM) is None:
            self.kill(signal.SIGKILL)
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def output(self) -> str:
        """What the process printed so far."""
        return self.log.read_text(errors="replace")


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Any]:
    """A factory of :class:`ServeProcess` on one config and data dir; every process is stopped afterwards."""
    config = tmp_path / "modelyard.toml"
    config.write_text(f'[platform]\ndata_dir = "{tmp_path / "data"}"\nlog_level = "info"\n')
    started: list[ServeProcess] = []

    def make(port: int | None = None) -> ServeProcess:
        proc = ServeProcess(config, port or free_port(), tmp_path / "serve.log")
        started.append(proc)
        return proc

    try:
        yield make
    finally:
        for proc in started:
            proc.stop()
