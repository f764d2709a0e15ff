"""A third-party plugin, installed with pip as a separate distribution, is discovered like a built-in one: it is
listed with its distribution and version, its provider validates in config, and the platform uses it.

The distribution lives in ``tests/e2e/data/acme_plugin`` (its own pyproject.toml declaring
``[project.entry-points.modelyard] acme = "acme_modelyard"``). It is installed offline into a temporary
``--target`` directory and put on ``PYTHONPATH`` of real ``modelyard`` processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
MODELYARD = ROOT / ".venv" / "bin" / "modelyard"


@pytest.fixture(scope="module")
def acme_site(tmp_path_factory) -> Path:
    """``pip install --no-deps --no-build-isolation --target <site> acme_plugin`` (no network needed)."""
    work = tmp_path_factory.mktemp("acme")
    src = work / "acme_plugin"
    shutil.copytree(DATA / "acme_plugin", src)
    site = work / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(site.glob("acme_modelyard-0.4.2.dist-info")), sorted(p.name for p in site.iterdir())
    return site


def _env(site: Path | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env.pop("PYTHONPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    env.update(extra)
    return env


def _modelyard(*args: str, site: Path | None, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MODELYARD), *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=_env(site, **extra))


def _config(tmp_path: Path, **storage: object) -> Path:
    lines = ["[platform]", f'data_dir = "{tmp_path / "data"}"', "", "[storage]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in storage.items()]
    cfg = tmp_path / "modelyard.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def test_installed_plugin_is_listed_with_its_distribution(acme_site, tmp_path):
    proc = _modelyard("plugins", "--json", site=acme_site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    plugins = {p["name"]: p for p in report["plugins"]}
    assert plugins["acme"]["distribution"] == "acme-modelyard"
    assert plugins["acme"]["version"] == "0.4.2"
    assert plugins["acme"]["hooks"] == ["modelyard_storages"]
    assert plugins["acme"]["builtin"] is False
    assert plugins["sql"]["builtin"] is True  # built-ins come through the same entry-point group
    storages = {p["name"]: p for p in report["slots"]["storage"]}
    assert storages["acme"]["plugin"] == "acme"
    assert storages["acme"]["distribution"] == "acme-modelyard"
    assert storages["acme"]["description"] == "Acme content-addressed directory store"

    human = _modelyard("plugins", site=acme_site, cwd=tmp_path)
    assert human.returncode == 0, human.stderr
    assert "acme-modelyard" in human.stdout and "0.4.2" in human.stdout

    without = json.loads(_modelyard("plugins", "--json", site=None, cwd=tmp_path).stdout)
    assert "acme" not in {p["name"] for p in without["plugins"]}


def test_plugin_can_be_disabled_by_name(acme_site, tmp_path):
    proc = _modelyard("plugins", "--json", site=acme_site, cwd=tmp_path, MODELYARD_DISABLE_PLUGINS="acme")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert "acme" not in {p["name"] for p in report["plugins"]}
    assert "acme" in report["disabled"]
    assert "acme" not in {p["name"] for p in report["slots"]["storage"]}


def test_config_selecting_the_plugin_validates(acme_site, tmp_path):
    cfg = _config(tmp_path, use="acme", root=str(tmp_path / "blobs"))
    proc = _modelyard("-c", str(cfg), "check", site=acme_site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"{cfg}: OK"
    doc = json.loads(_modelyard("-c", str(cfg), "check", "--json", site=acme_site, cwd=tmp_path).stdout)
    assert doc["slots"]["storage"] == ["acme"]

    # its schema is enforced like a built-in's
    bad = _config(tmp_path, use="acme", rooot=str(tmp_path / "blobs"))
    proc = _modelyard("-c", str(bad), "check", site=acme_site, cwd=tmp_path)
    assert proc.returncode == 2
    assert "[storage] rooot" in proc.stderr and "did you mean 'root'?" in proc.stderr
    assert "[storage] root" in proc.stderr and "missing required key" in proc.stderr

    # and without the distribution installed the provider is unknown
    proc = _modelyard("-c", str(cfg), "check", site=None, cwd=tmp_path)
    assert proc.returncode == 2
    assert "'acme' is not an installed storage" in proc.stderr


def _tiny_onnx(path: Path) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array([[1.0], [2.0]], dtype=np.float32), name="w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1])], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def test_the_platform_uses_the_plugin(acme_site, tmp_path):
    blobs = tmp_path / "blobs"
    cfg = _config(tmp_path, use="acme", root=str(blobs))
    code = ("import sys\nfrom modelyard import Platform\nwith Platform.from_config(sys.argv[1]) as p:\n"
            "    print(type(p.storage).__module__, type(p.storage).__name__)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=_env(acme_site))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["acme_modelyard", "AcmeStore"]

    # a registration through the CLI lands its bundle in acme's directory
    model = _tiny_onnx(tmp_path / "tiny.onnx")
    proc = _modelyard("-c", str(cfg), "models", "register", "tiny", str(model), "--flavor", "onnx", "--json",
                      site=acme_site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    digest = json.loads(proc.stdout)["artifact"]["digest"]
    assert (blobs / digest[:2] / digest).is_file()


def test_broken_third_party_plugin_warns_and_fails_only_when_used(tmp_path):
    site = tmp_path / "site"
    info = site / "broken_modelyard-1.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-modelyard\nVersion: 1.0.0\n")
    (info / "entry_points.txt").write_text("[modelyard]\nbroken = broken_modelyard\n")
    (site / "broken_modelyard.py").write_text('raise ImportError("libbroken.so: cannot open shared object file")\n')

    proc = _modelyard("plugins", "--json", site=site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["broken"] == {"broken": "ImportError: libbroken.so: cannot open shared object file"}
    warning_lines = [line for line in proc.stderr.splitlines() if "broken" in line]
    assert warning_lines == ["warning: Error loading plugin 'broken' from broken-modelyard: ImportError: "
                             "libbroken.so: cannot open shared object file"]

    cfg = _config(tmp_path, use="broken")
    proc = _modelyard("-c", str(cfg), "check", site=site, cwd=tmp_path)
    assert proc.returncode == 2
    assert "'broken' is not an installed storage" in proc.stderr
    assert "plugins that failed to load: broken (ImportError: libbroken.so" in proc.stderr
