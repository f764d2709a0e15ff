"""End-to-end CLI flows on the real stack (sql registry on SQLite, fsspec storage, onnx builder, local runtime):
init → check, then models register/list/show/alias → deploy → predict → undeploy, each with and without
``--json``, embedded and against a real ``modelyard serve`` (``--server``: the same test, the same output), plus
the exit codes of the installed ``modelyard`` script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_modes import Cli, cli_in_both_modes  # noqa: F401  (the fixture "cli": embedded and --server)
from modelyard.cli import EXIT_FAILED, EXIT_USAGE, build_app
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
MODELYARD = ROOT / ".venv" / "bin" / "modelyard"


def _rows(text: str) -> list[list[str]]:
    """The cells of a rich table's body rows."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


@pytest.fixture
def run(tmp_path, monkeypatch):
    """Invoke the CLI (built from the installed plugins) in an empty project directory."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0, **kwargs):
        result = runner.invoke(build_app(), list(args), **kwargs)
        assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
        return result

    return invoke


def _json(result) -> object:
    return json.loads(result.stdout)


def test_init_then_check(run):
    assert "wrote modelyard.toml" in run("init").stdout
    checked = run("check")
    assert checked.stdout.splitlines()[0] == "modelyard.toml: OK"
    assert ["registry", "sql"] in _rows(checked.stdout) and ["runtime", "local"] in _rows(checked.stdout)


def test_flow(cli: Cli, tiny_models, tmp_path):
    run, one, two = cli, *tiny_models
    # ---------------------------------------------------------------- register, with tags, alias and lineage
    v1 = _json(run("models", "register", "churn", str(one.path), "--flavor", "onnx", "--tag", "team=growth",
                   "--tag", "stage=dev", "--alias", "staging", "--lineage", "source_run=run-42",
                   "--lineage", "dataset=s3://d/a.parquet", "--lineage", "dataset=s3://d/b.parquet",
                   "--lineage", "code_ref=git:abc123", "--description", "first cut", "--json"))
    assert (v1["model"], v1["version"], v1["flavor"]) == ("churn", 1, "onnx")
    assert v1["tags"] == {"team": "growth", "stage": "dev"}
    assert v1["aliases"] == ["staging"]
    assert v1["lineage"] == {"source_run": "run-42", "datasets": ["s3://d/a.parquet", "s3://d/b.parquet"],
                             "code_ref": "git:abc123"}
    assert v1["description"] == "first cut"
    assert len(v1["artifact"]["digest"]) == 64 and v1["artifact"]["size"] > 0
    assert v1["signature"]["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    assert [o["name"] for o in v1["signature"]["outputs"]] == ["y"]

    human = run("models", "register", "churn", str(two.path), "--flavor", "onnx", "--tag", "team=growth")
    assert "churn:2" in human.stdout
    fields = dict((r[0], r[1]) for r in _rows(human.stdout) if len(r) == 2)
    assert fields["version"] == "2" and fields["flavor"] == "onnx" and fields["tags"] == "team=growth"

    # ---------------------------------------------------------------- list
    page = _json(run("models", "list", "--json"))
    assert [m["name"] for m in page["items"]] == ["churn"] and page["total"] == 1
    assert page["items"][0]["latest_version"] == 2 and page["items"][0]["aliases"] == {"staging": 1}
    assert _json(run("models", "list", "--prefix", "ch", "--json"))["total"] == 1
    assert _json(run("models", "list", "--prefix", "zz", "--json"))["items"] == []
    assert [m["name"] for m in _json(run("models", "list", "--alias", "staging", "--json"))["items"]] == ["churn"]
    assert _json(run("models", "list", "--alias", "production", "--json"))["items"] == []
    listed = run("models", "list")
    assert any(r[:2] == ["churn", "2"] and "staging=1" in r[2] for r in _rows(listed.stdout))

    # ---------------------------------------------------------------- show
    shown = _json(run("models", "show", "churn", "--json"))
    assert shown["model"]["name"] == "churn" and shown["model"]["latest_version"] == 2
    assert [v["version"] for v in shown["versions"]["items"]] == [2, 1]
    assert _json(run("models", "show", "churn:1", "--json")) == v1
    assert _json(run("models", "show", "churn@staging", "--json"))["version"] == 1
    human_show = run("models", "show", "churn")
    version_rows = [r for r in _rows(human_show.stdout) if len(r) == 7]
    assert [r[0] for r in version_rows] == ["2", "1"]
    assert "x: FP32[-1, 3]" in run("models", "show", "churn:1").stdout

    # ---------------------------------------------------------------- alias
    aliased = _json(run("models", "alias", "churn", "2", "production", "--json"))
    assert aliased["version"] == 2 and "production" in aliased["aliases"]
    previous = run("models", "alias", "churn", "1", "previous")
    assert "churn:1" in previous.stdout and "previous" in previous.stdout
    assert _json(run("models", "show", "churn", "--json"))["model"]["aliases"] == {
        "staging": 1, "production": 2, "previous": 1}

    # ---------------------------------------------------------------- deploy
    dep = _json(run("deploy", "churn", "--json"))  # bare name: the production alias
    assert (dep["name"], dep["model"], dep["version"], dep["state"]) == ("churn", "churn", 2, "ready")
    assert dep["batching"] is None and dep["replicas"] == 1
    batched = _json(run("deploy", "churn:1", "--name", "churn-v1", "--max-batch-size", "8", "--max-wait-ms", "1",
                        "--json"))
    assert (batched["name"], batched["version"]) == ("churn-v1", 1)
    assert batched["batching"] == {"max_batch_size": 8, "max_wait_ms": 1.0, "wait_when_idle": False}
    human_dep = run("deploy", "churn@staging", "--name", "churn-staging")
    assert ["version", "1"] in _rows(human_dep.stdout)
    # embedded, the deployment is a record until something serves it, and the CLI says so
    assert ("note:" in human_dep.stderr) is (cli.mode == "embedded")
    deps = _json(run("deployments", "--json"))["items"]
    assert {d["name"]: d["version"] for d in deps} == {"churn": 2, "churn-v1": 1, "churn-staging": 1}
    assert {r[0] for r in _rows(run("deployments").stdout)} == {"churn", "churn-v1", "churn-staging"}

    # ---------------------------------------------------------------- predict
    x = [[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]]
    out = _json(run("predict", "churn", "--input", json.dumps({"x": x}), "--json"))
    np.testing.assert_allclose(out["y"], two.expected(x), rtol=1e-6)
    out = _json(run("predict", "churn-v1", "--input", json.dumps(x), "--json"))  # bare list: the single input
    np.testing.assert_allclose(out["y"], one.expected(x), rtol=1e-6)
    (tmp_path / "in.json").write_text(json.dumps({"x": x}))
    out = _json(run("predict", "churn", "--input", "@in.json", "--json"))
    np.testing.assert_allclose(out["y"], two.expected(x), rtol=1e-6)
    np.save(tmp_path / "in.npy", np.asarray(x))
    human_pred = run("predict", "churn-staging", "--input", "@in.npy")
    np.testing.assert_allclose(json.loads(human_pred.stdout)["y"], one.expected(x), rtol=1e-6)

    # ---------------------------------------------------------------- undeploy
    assert _json(run("undeploy", "churn-v1", "--json")) == {"name": "churn-v1", "undeployed": True}
    assert run("undeploy", "churn-staging").stdout.strip() == "undeployed churn-staging"
    assert [d["name"] for d in _json(run("deployments", "--json"))["items"]] == ["churn"]

    # ---------------------------------------------------------------- failures: 1 for operations, 2 for usage
    lost = run("models", "show", "nope", code=EXIT_FAILED)
    assert lost.stderr.startswith("error: ") and lost.stderr.count("\n") == 1 and "nope" in lost.stderr
    run("models", "show", "churn:9", code=EXIT_FAILED)
    run("models", "alias", "churn", "9", "production", code=EXIT_FAILED)
    run("predict", "nope", "--input", json.dumps(x), code=EXIT_FAILED)
    run("undeploy", "churn-v1", code=EXIT_FAILED)
    run("predict", "churn", "--input", "{not json", code=EXIT_USAGE)
    wrong = run("predict", "churn", "--input", json.dumps({"z": x}), code=EXIT_USAGE)
    assert "unknown input(s) 'z'" in wrong.stderr
    run("models", "register", "churn", "absent.onnx", "--flavor", "onnx", code=EXIT_USAGE)
    flavor = run("models", "register", "churn", str(one.path), "--flavor", "nope", code=EXIT_USAGE)
    assert "flavor 'nope'" in flavor.stderr
    assert _json(run("models", "show", "churn", "--json"))["model"]["latest_version"] == 2  # nothing recorded


def test_installed_script_exit_codes(tmp_path, tiny_models):
    one, _ = tiny_models
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}

    def modelyard(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(MODELYARD), *args], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                              env={**env, **extra})

    assert modelyard("init").returncode == 0
    ok = modelyard("models", "register", "m", str(one.path), "--flavor", "onnx", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["version"] == 1
    listed = modelyard("models", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)["total"] == 1

    missing = modelyard("models", "show", "nope")
    assert missing.returncode == 1 and missing.stdout == "" and missing.stderr.startswith("error: ")
    assert modelyard("models", "alias", "m", "one", "production").returncode == 2  # usage
    assert modelyard("frobnicate").returncode == 2

    (tmp_path / "bad.toml").write_text('[runtime]\nuse = "nope"\n')
    bad = modelyard("-c", "bad.toml", "models", "list")
    assert bad.returncode == 2 and "[runtime] use" in bad.stderr
    via_env = modelyard("models", "list", MODELYARD_CONFIG=str(tmp_path / "bad.toml"))
    assert via_env.returncode == 2 and "'nope' is not an installed runtime" in via_env.stderr


def test_template_plugin_sections_validate_when_uncommented(run, tmp_path):
    """The commented [server] block of the template is correct: uncommented, it validates against the plugin."""
    run("init")
    text = (tmp_path / "modelyard.toml").read_text()
    start = text.index("# [server]")
    block = "\n".join(line.removeprefix("# ") for line in text[start:].splitlines())
    (tmp_path / "modelyard.toml").write_text(text[:start] + block + "\n")
    doc = _json(run("check", "--json"))
    assert doc["ok"] is True and "server" in doc["sections"]
