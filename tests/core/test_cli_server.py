"""``--server`` mode: the same commands against a real ``modelyard serve`` on 127.0.0.1, through
:class:`modelyard.client.Client` — and the same output as embedded mode."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from cli_modes import MODELYARD, clean_env, serving
from modelyard.cli import EXIT_FAILED, EXIT_USAGE, build_app
from modelyard.cli.config import template_text
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``modelyard -c <project>/modelyard.toml serve --dev --port 0`` in a subprocess; yields (url, project)."""
    project = tmp_path_factory.mktemp("served")
    (project / "modelyard.toml").write_text(template_text())
    with serving(project / "modelyard.toml") as url:
        yield url, project


@pytest.fixture
def run(server):
    """Invoke the CLI against the server."""
    url, project = server
    runner = CliRunner()

    def invoke(*args: str, code: int = 0, remote: bool = True, **kwargs):
        prefix = ["--server", url] if remote else ["-c", str(project / "modelyard.toml")]
        result = runner.invoke(build_app(), [*prefix, *args], env={"MODELYARD_SERVER": None}, **kwargs)
        assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
        return result

    return invoke


def _json(result) -> object:
    return json.loads(result.stdout)


def test_server_mode_flow(run, server, tiny_models, tmp_path):
    one, two = tiny_models
    v1 = _json(run("models", "register", "churn", str(one.path), "--flavor", "onnx", "--tag", "team=growth",
                   "--alias", "staging", "--lineage", "source_run=run-7", "--lineage", "dataset=s3://d/x.parquet",
                   "--description", "served", "--json"))
    assert (v1["model"], v1["version"], v1["aliases"], v1["tags"]) == ("churn", 1, ["staging"], {"team": "growth"})
    assert v1["lineage"] == {"source_run": "run-7", "datasets": ["s3://d/x.parquet"]}
    assert "churn:2" in run("models", "register", "churn", str(two.path), "--flavor", "onnx").stdout

    page = _json(run("models", "list", "--json"))
    assert [m["name"] for m in page["items"]] == ["churn"] and page["items"][0]["latest_version"] == 2
    assert _json(run("models", "list", "--alias", "production", "--json"))["items"] == []
    shown = _json(run("models", "show", "churn", "--json"))
    assert [v["version"] for v in shown["versions"]["items"]] == [2, 1]
    assert _json(run("models", "show", "churn@staging", "--json"))["version"] == 1
    assert "production" in _json(run("models", "alias", "churn", "2", "production", "--json"))["aliases"]

    # both modes print the same thing for the same record
    for args in (("models", "show", "churn:1", "--json"), ("models", "show", "churn", "--json"),
                 ("models", "list", "--json")):
        assert _json(run(*args)) == _json(run(*args, remote=False)), args
    assert run("models", "show", "churn:1").stdout == run("models", "show", "churn:1", remote=False).stdout

    dep = _json(run("deploy", "churn", "--max-batch-size", "4", "--json"))
    assert (dep["name"], dep["version"], dep["state"]) == ("churn", 2, "ready")
    assert dep["batching"] == {"max_batch_size": 4, "max_wait_ms": 2.0, "wait_when_idle": False}
    assert [d["name"] for d in _json(run("deployments", "--json"))["items"]] == ["churn"]
    assert "churn" in run("deployments").stdout

    x = [[1.0, 2.0, 3.0], [-1.0, 0.0, 0.5]]
    out = _json(run("predict", "churn", "--input", json.dumps({"x": x}), "--json"))
    np.testing.assert_allclose(out["y"], two.expected(x), rtol=1e-6)
    np.testing.assert_allclose(json.loads(run("predict", "churn", "--input", json.dumps(x)).stdout)["y"],
                               two.expected(x), rtol=1e-6)

    report = _json(run("plugins", "--json"))
    assert {"server", "sql", "onnx"} <= {p["name"] for p in report["plugins"]}
    assert "local" in {p["name"] for p in report["slots"]["runtime"]}

    # failures map to the same exit codes as in embedded mode
    lost = run("models", "show", "nope", code=EXIT_FAILED)
    assert lost.stderr.startswith("error: ") and "nope" in lost.stderr and lost.stderr.count("\n") == 1
    run("predict", "nope", "--input", json.dumps(x), code=EXIT_FAILED)
    run("models", "alias", "churn", "1", "Not-An-Alias!", code=EXIT_USAGE)  # rejected by the server: 422
    run("predict", "churn", "--input", json.dumps({"z": x}), code=EXIT_USAGE)
    run("models", "register", "churn", str(tmp_path / "absent.onnx"), "--flavor", "onnx", code=EXIT_USAGE)

    assert _json(run("undeploy", "churn", "--json")) == {"name": "churn", "undeployed": True}
    assert _json(run("deployments", "--json"))["items"] == []


def test_server_chosen_by_environment_and_unreachable_server(server):
    url, _ = server
    runner = CliRunner()
    result = runner.invoke(build_app(), ["models", "list", "--json"], env={"MODELYARD_SERVER": url})
    assert result.exit_code == 0, result.stderr
    assert "items" in json.loads(result.stdout)

    proc = subprocess.run([str(MODELYARD), "models", "show", "nope"], capture_output=True, text=True, timeout=120,
                          env=clean_env(MODELYARD_SERVER=url))
    assert proc.returncode == 1 and proc.stdout == "" and proc.stderr.startswith("error: ")

    down = runner.invoke(build_app(), ["--server", "http://127.0.0.1:9", "models", "list"])
    assert down.exit_code == EXIT_FAILED
    assert down.stderr.startswith("error: ") and down.stderr.count("\n") == 1


def test_server_mode_search_model_tags_and_json_errors(run, tiny_models):
    one, two = tiny_models
    run("models", "register", "ranker", str(one.path), "--flavor", "onnx", "--tag", "team=search",
        "--model-tag", "owner=bo")
    run("models", "register", "ranker", str(two.path), "--flavor", "onnx", "--tag", "team=ads")

    found = _json(run("models", "search", "--tag", "team=search", "--json"))
    assert [(v["model"], v["version"]) for v in found["items"]] == [("ranker", 1)]
    assert [v["version"] for v in _json(run("models", "search", "--prefix", "rank", "--flavor", "onnx",
                                            "--json"))["items"]] == [2, 1]
    assert [m["name"] for m in _json(run("models", "list", "--tag", "owner=bo", "--json"))["items"]] == ["ranker"]
    assert _json(run("models", "list", "--tag", "team=search", "--json"))["items"] == []
    # both modes agree
    for args in (("models", "search", "--tag", "team=ads", "--json"), ("models", "list", "--tag", "owner=bo",
                                                                       "--json")):
        assert _json(run(*args)) == _json(run(*args, remote=False)), args

    lost = _json(run("models", "show", "nope", "--json", code=EXIT_FAILED))
    assert (lost["error"]["type"], lost["error"]["status"]) == ("NotFound", 404)
    bad = _json(run("models", "alias", "ranker", "1", "Not-An-Alias!", "--json", code=EXIT_USAGE))
    assert bad["error"]["status"] == 422
