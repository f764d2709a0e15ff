"""The two modes a CLI command runs in — on the embedded platform the config assembles, and with ``--server``
against a real ``modelyard serve`` of the same project — so that one test body checks both: the commands call
one Protocol (``modelyard.api.PlatformAPI``) on a Platform or a Client, and print the same records.

Use the ``cli`` fixture (``from cli_modes import cli_in_both_modes``): it runs each test once per mode in an empty project
directory whose ``modelyard.toml`` is the ``init`` template. ``cli(*args, code=0)`` invokes the CLI in the
test's mode and checks the exit code; ``local=True`` runs a command on the embedded platform in either mode
(``init``, ``check``, or to compare the two).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
from modelyard.cli import build_app
from modelyard.cli.config import template_text
from typer.testing import CliRunner, Result

ROOT = Path(__file__).resolve().parents[2]
MODELYARD = ROOT / ".venv" / "bin" / "modelyard"
MODES = ("embedded", "server")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any ``MODELYARD_*`` variable of the caller's, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}, **extra}


@contextmanager
def serving(config: Path) -> Iterator[str]:
    """``modelyard -c CONFIG serve --dev --port 0`` in a subprocess; yields its URL, stops it with SIGINT."""
    log = (config.parent / "server.log").open("w")
    proc = subprocess.Popen([str(MODELYARD), "-c", str(config), "serve", "--dev", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=log, text=True, cwd=config.parent, env=clean_env())
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()
    try:
        try:
            line = lines.get(timeout=120)
        except queue.Empty:
            pytest.fail("the server did not announce itself: " + (config.parent / "server.log").read_text())
        assert line.startswith("modelyard serving on http://127.0.0.1:"), line
        yield line.split()[3]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@attrs.define
class Cli:
    """Invokes the CLI in one mode on one project."""

    mode: str
    config: Path
    url: str | None = None
    runner: CliRunner = attrs.Factory(CliRunner)

    def __call__(self, *args: str, code: int = 0, local: bool = False, **kwargs: Any) -> Result:
        """Run ``modelyard ARGS`` and check that it exits with ``code``."""
        remote = self.url is not None and not local
        prefix = ["--server", self.url] if remote else ["-c", str(self.config)]
        result = self.runner.invoke(build_app(), [*prefix, *args], env={"MODELYARD_SERVER": None}, **kwargs)
        assert result.exit_code == code, (self.mode, args, result.stdout, result.stderr, result.exception)
        return result


@pytest.fixture(name="cli", params=MODES)
def cli_in_both_modes(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """The CLI on a fresh project in ``tmp_path`` (the working directory), embedded or ``--server``."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "modelyard.toml"
    config.write_text(template_text())
    if request.param == "embedded":
        yield Cli("embedded", config)
        return
    with serving(config) as url:
        yield Cli("server", config, url)
