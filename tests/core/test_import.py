"""``import modelyard`` and ``modelyard --help`` stay light: no heavy framework imported, import under 0.5 s
(DESIGN "Performance targets"). Each check runs in a fresh interpreter so nothing imported by other tests counts."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
HEAVY = ("torch", "tensorflow", "ray", "hvac", "s3fs", "sklearn", "jax")

_REPORT_HEAVY = f"""
import json, sys
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print(json.dumps(heavy))
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_import_modelyard_imports_no_heavy_framework():
    proc = _run("import modelyard, modelyard.platform, modelyard.cli" + _REPORT_HEAVY)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []


def test_import_modelyard_is_fast():
    code = "import time; t = time.perf_counter(); import modelyard; print(time.perf_counter() - t)"
    times = []
    for _ in range(3):
        proc = _run(code)
        assert proc.returncode == 0, proc.stderr
        times.append(float(proc.stdout.strip()))
    assert statistics.median(times) < 0.5, times


def test_help_loads_every_plugin_but_no_heavy_framework():
    # main() discovers every installed plugin (so that plugins can add commands) before printing the help.
    code = ("import sys\nfrom modelyard.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit as e:\n"
            "    assert e.code in (0, None), e.code\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('modelyard_plugins.'))\n"
            "print(loaded, file=sys.stderr)\n" + _REPORT_HEAVY)
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: modelyard" in proc.stdout
    assert "modelyard_plugins." in proc.stderr  # the plugins really were imported
    assert json.loads(proc.stdout.splitlines()[-1]) == []


def test_installed_script_help_exits_0():
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "modelyard"), "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    for command in ("init", "check", "plugins", "models", "deploy", "undeploy", "deployments", "predict"):
        assert command in proc.stdout


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run([PYTHON, "-m", "modelyard", "models", "--help"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "register" in proc.stdout and "alias" in proc.stdout
