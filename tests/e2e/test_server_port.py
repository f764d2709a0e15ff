"""A busy port is one clear line and exit code 1, before anything is built: from ``modelyard serve`` as a real
process, and from the quickstart, which must not print its curl line for a server that cannot start."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


@pytest.fixture
def server_busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that a test socket listens on."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def test_serve_on_a_busy_port_exits_1_with_one_line(tmp_path: Path, server_busy_port: int) -> None:
    config = tmp_path / "modelyard.toml"
    config.write_text(f'[platform]\ndata_dir = "{tmp_path / "data"}"\n')
    result = subprocess.run([sys.executable, "-m", "modelyard", "-c", str(config), "serve", "--dev", "--port",
                             str(server_busy_port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (f"error: port {server_busy_port} on 127.0.0.1 is already in use; pass --port "
                                     "with a free port (--port 0 picks one), or stop what is listening there")
    assert result.stdout == "" and not (tmp_path / "data").exists()


def test_quickstart_on_a_busy_port_says_so_before_preparing(tmp_path: Path, server_busy_port: int) -> None:
    example = tmp_path / "quickstart"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns(".modelyard", "churn.onnx", "__pycache__"))
    result = subprocess.run([sys.executable, str(example / "run.py"), "--port", str(server_busy_port)],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert result.returncode == 1
    assert f"port {server_busy_port} on 127.0.0.1 is already in use" in result.stderr
    assert "curl" not in result.stdout + result.stderr
    assert not (example / ".modelyard").exists() and not (example / "churn.onnx").exists()  # nothing prepared
