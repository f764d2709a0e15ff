"""The quickstart works as its README says: ``run.py --no-serve`` registers, deploys and predicts; ``run.py`` serves
and the curl line it prints gets a valid V2 answer.

The example runs from a temp copy of ``examples/quickstart`` so the repository's ``.modelyard`` stays untouched.
Every subprocess gets its own process group, killed at the end whatever happens.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
SERVER_START_TIMEOUT = 60.0

pytestmark = pytest.mark.slow


@pytest.fixture
def quickstart(tmp_path: Path) -> Path:
    """A fresh copy of the example directory (sources only: no model file, no data dir)."""
    dest = tmp_path / "quickstart"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".modelyard", "churn.onnx", "__pycache__"))
    return dest


def _env() -> dict[str, str]:
    # The example must work from any working directory with nothing but the installed package.
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _run_no_serve(quickstart: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(quickstart / "run.py"), "--no-serve"], cwd=quickstart.parent,
                          env=_env(), capture_output=True, text=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM the process group, SIGKILL it after a grace period; the exit status after SIGTERM (None if killed)."""
    code = None
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=15)
    except ProcessLookupError:
        code = proc.poll()
    except subprocess.TimeoutExpired:
        code = None
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever the server left behind in its group
    except ProcessLookupError:
        pass
    proc.wait(timeout=15)
    return code


@pytest.fixture
def started(quickstart: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    """``run.py --port P`` running in its own process group; yields (process, its output file, port)."""
    port = _free_port()
    out = quickstart.parent / "run.out"
    with open(out, "wb") as fh:
        proc = subprocess.Popen([sys.executable, str(quickstart / "run.py"), "--port", str(port)],
                                cwd=quickstart.parent, env=_env(), stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc, out, port
    finally:
        _stop(proc)


def _expected_probability(model: Path, features: list[float]) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    x = np.asarray(features, dtype=np.float32).reshape(1, -1)
    return float(session.run(["probability"], {"float_input": x})[0].ravel()[0])


def test_no_serve_registers_deploys_and_predicts(quickstart: Path) -> None:
    first = _run_no_serve(quickstart)
    assert first.returncode == 0, first.stdout + first.stderr
    assert re.search(r"^registered churn:1 \(", first.stdout, re.M), first.stdout
    match = re.search(r"^deployed churn; a local prediction: probability=([0-9.]+)$", first.stdout, re.M)
    assert match, first.stdout
    assert 0.0 <= float(match.group(1)) <= 1.0
    assert (quickstart / "churn.onnx").is_file()
    assert (quickstart / ".modelyard").is_dir()  # data_dir is relative to the config file, not the cwd

    # What the run left behind is a real registry: the version, its production alias and the deployment record.
    from modelyard import Platform

    with Platform.from_config(quickstart / "modelyard.toml") as platform:
        model = platform.registry.get_model("churn")
        assert model.aliases.get("production") == 1
        deployment = platform.get_deployment("churn")
        assert (deployment.model, deployment.version, deployment.state) == ("churn", 1, "ready")
        assert deployment.batching is not None and deployment.batching.max_batch_size == 32

    # Running it again reuses the registered version (same artifact digest) instead of adding churn:2.
    second = _run_no_serve(quickstart)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "registered churn" not in second.stdout
    assert "deployed churn; a local prediction" in second.stdout
    with Platform.from_config(quickstart / "modelyard.toml") as platform:
        assert [v.number for v in platform.registry.search(prefix="churn", limit=10).items] == [1]


def test_served_quickstart_answers_its_curl_line(started: tuple[subprocess.Popen[bytes], Path, int],
                                                 quickstart: Path) -> None:
    proc, out, port = started
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    curl = None
    while curl is None and time.monotonic() < deadline:
        curl = next((ln.strip() for ln in out.read_text(errors="replace").splitlines()
                     if ln.strip().startswith("curl ")), None)
        if curl is None:
            assert proc.poll() is None, out.read_text(errors="replace")
            time.sleep(0.05)
    assert curl is not None, f"no curl line within {SERVER_START_TIMEOUT}s:\n{out.read_text(errors='replace')}"

    args = shlex.split(curl)
    url = next(a for a in args if a.startswith("http://"))
    assert url == f"http://127.0.0.1:{port}/v2/models/churn/infer"
    body = json.loads(args[args.index("-d") + 1])
    assert "Content-Type: application/json" in args

    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=10) as client:
        while True:
            assert proc.poll() is None, f"the server exited:\n{out.read_text(errors='replace')}"
            try:
                if client.get("/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"not ready in time:\n{out.read_text(errors='replace')}"
            time.sleep(0.05)
        # Ready means the recorded deployment was restored, not just that the socket is open.
        assert client.get("/v2/models/churn/ready").status_code == 200
        response = client.post(url.removeprefix(base), content=json.dumps(body),
                               headers={"Content-Type": "application/json"})

    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["model_name"] == "churn"
    outputs = {o["name"]: o for o in doc["outputs"]}
    assert set(outputs) == {"probability", "label"}
    prob, label = outputs["probability"], outputs["label"]
    assert (prob["datatype"], prob["shape"]) == ("FP32", [1, 1])
    assert (label["datatype"], label["shape"]) == ("INT64", [1, 1])
    p = float(np.ravel(prob["data"])[0])
    assert p == pytest.approx(_expected_probability(quickstart / "churn.onnx", body["inputs"][0]["data"]), abs=1e-6)
    assert int(np.ravel(label["data"])[0]) == int(p > 0.5)

    assert _stop(proc) is not None, "the server ignored SIGTERM for 15 s"
