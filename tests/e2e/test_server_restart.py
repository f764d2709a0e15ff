"""``modelyard serve`` as a real process: it serves what was deployed after being killed and started again on the
same data dir, with nobody redeploying; it refuses to run without credentials outside dev mode."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelyard.client import Client
from server_harness import ort_outputs, server_model_path, server_process, wait_ready  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

X = np.random.default_rng(5).normal(size=(3, 20)).astype(np.float32)


def test_a_killed_server_serves_its_deployments_again(server_process: Any, server_model_path: Path) -> None:  # noqa: F811
    first = server_process().start()
    wait_ready(first.url, proc=first.proc)
    assert "modelyard serving on http://127.0.0.1" in first.output()
    expected = ort_outputs(server_model_path, X)
    with Client(first.url) as client:
        client.register("churn", server_model_path, flavor="onnx", alias="production")
        client.deploy("churn@production", name="churn-live")
        np.testing.assert_allclose(client.predict("churn-live", {"x": X})["probability"], expected["probability"],
                                   rtol=1e-6)
    assert first.kill(signal.SIGKILL) == -signal.SIGKILL  # no shutdown hook ran

    second = server_process(first.port).start()
    seconds = wait_ready(second.url, proc=second.proc)  # ready means: every recorded deployment is served
    with Client(second.url) as client:
        assert client.deployments()[0].name == "churn-live"
        out = client.predict("churn-live", {"x": X})
        np.testing.assert_allclose(out["probability"], expected["probability"], rtol=1e-6)
    # The target is 2 s on an idle machine (benchmarks/serving.py measures it); here only a sanity bound, since
    # the test machine is shared.
    assert seconds < 30, f"restart took {seconds:.1f}s to be ready"
    second.stop()
    assert second.proc.returncode is not None


def test_sigterm_stops_gracefully(server_process: Any) -> None:  # noqa: F811
    proc = server_process().start()
    wait_ready(proc.url, proc=proc.proc)
    # uvicorn re-raises the signal once it has shut down, so the status is the signal's either way
    assert proc.kill(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "server stopped" in proc.output()  # the shutdown hook ran (and closed the platform)


def test_serve_without_dev_refuses_the_anonymous_provider(tmp_path: Path) -> None:
    config = tmp_path / "modelyard.toml"
    config.write_text(f'[platform]\ndata_dir = "{tmp_path / "data"}"\n')
    result = subprocess.run([sys.executable, "-m", "modelyard", "-c", str(config), "serve", "--port", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "[auth]" in result.stderr and "--dev" in result.stderr
