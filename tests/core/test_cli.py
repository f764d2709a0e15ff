"""The CLI's own behaviour, on fake plugins: ``init`` and its template, ``check``, exit codes, error lines, input
parsing for ``predict``, per-invocation operation ids and commands added by plugins."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest
import structlog
import typer
from modelyard import hookimpl
from modelyard.cli import EXIT_FAILED, EXIT_USAGE, build_app, exit_code_for
from modelyard.cli.config import template_text
from modelyard.cli.parsing import jsonable, parse_pairs, read_input_text, to_named_inputs
from modelyard.errors import BuildError, ConfigError, ConfigIssue, InvalidInput, NotFound, PluginError
from modelyard.plugins import get_plugin_manager
from modelyard.providers import SLOTS
from typer.testing import CliRunner


@pytest.fixture
def cli(fake_pm_factory, tmp_path, monkeypatch):
    """Invoke the CLI in an empty directory, with platforms assembled from the fake plugins."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, pm=None, **kwargs):
        app = build_app(pm, plugin_manager_factory=fake_pm_factory)
        return runner.invoke(app, list(args), **kwargs)

    return invoke


# --------------------------------------------------------------------------------------------- init
def test_template_shows_every_slot_with_its_embedded_default():
    data = tomllib.loads(template_text())
    assert set(data) == {"platform", *SLOTS}
    for slot in SLOTS.values():
        if slot.name == "builders":
            assert data["builders"] == {}  # every installed flavor, none configured
        elif slot.many:
            assert [e["use"] for e in data[slot.name]] == list(slot.default)
        else:
            assert data[slot.name] == {"use": slot.default[0]}, slot.name
    comments = [line for line in template_text().splitlines() if line.startswith("#")]
    assert len(comments) > 20  # it is meant to be read


def test_init_writes_a_config_that_checks_clean(cli, tmp_path):
    result = cli("init")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "modelyard.toml").read_text() == template_text()
    assert "wrote modelyard.toml" in result.stdout

    checked = cli("check")
    assert checked.exit_code == 0, checked.stderr
    assert checked.stdout.splitlines()[0] == "modelyard.toml: OK"
    rows = dict(_table_rows(checked.stdout))
    assert rows == {"secrets": "env", "registry": "sql", "storage": "fsspec", "builders": "onnx",
                    "scheduler": "local", "runtime": "local", "monitors": "log", "auth": "anonymous",
                    "billing": "none"}


def _table_rows(text: str) -> list[tuple[str, ...]]:
    return [tuple(c.strip() for c in line.split("│")[1:-1]) for line in text.splitlines() if line.startswith("│")]


def test_init_refuses_to_overwrite_without_force(cli, tmp_path):
    (tmp_path / "modelyard.toml").write_text("# mine\n")
    result = cli("init")
    assert result.exit_code == EXIT_FAILED
    assert result.stderr.strip() == "error: modelyard.toml exists; use --force to overwrite it"
    assert (tmp_path / "modelyard.toml").read_text() == "# mine\n"

    forced = cli("init", "--force", "--json")
    assert forced.exit_code == 0
    assert json.loads(forced.stdout) == {"path": "modelyard.toml", "written": True}
    assert (tmp_path / "modelyard.toml").read_text() == template_text()


def test_init_into_a_directory(cli, tmp_path):
    (tmp_path / "proj").mkdir()
    result = cli("init", "proj")
    assert result.exit_code == 0
    assert (tmp_path / "proj" / "modelyard.toml").is_file()
    assert cli("-c", "proj/modelyard.toml", "check").exit_code == 0


# --------------------------------------------------------------------------------------------- check
def test_check_without_a_file_validates_the_defaults(cli):
    result = cli("check", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["file"] is None and doc["ok"] is True
    assert doc["slots"]["runtime"] == ["local"] and doc["slots"]["monitors"] == ["log"]


def test_check_resolves_env_references(cli, tmp_path):
    (tmp_path / "modelyard.toml").write_text('[registry]\nurl = "${env:DB_URL}"\n')
    assert cli("check", env={"DB_URL": "sqlite:///x.db"}).exit_code == 0
    missing = cli("check", env={"DB_URL": None})
    assert missing.exit_code == EXIT_USAGE
    assert "line 2" in missing.stderr and "[registry] url" in missing.stderr and "'DB_URL' is not set" in missing.stderr


# --------------------------------------------------------------------------------------------- exit codes
@pytest.mark.parametrize(("exc", "code"), [
    (ConfigError([ConfigIssue(message="x")]), 2), (InvalidInput("x"), 2), (NotFound("x"), 1),
    (BuildError("x"), 1), (PluginError("x"), 1), (RuntimeError("x"), 1),
])  # fmt: skip
def test_exit_code_mapping(exc, code):
    assert exit_code_for(exc) == code


def test_usage_errors_exit_2(cli):
    assert cli("models", "alias", "churn", "not-a-number", "production").exit_code == EXIT_USAGE
    assert cli("models", "register", "churn", "model.onnx").exit_code == EXIT_USAGE  # --flavor missing
    assert cli("no-such-command").exit_code == EXIT_USAGE
    assert cli("predict", "churn").exit_code == EXIT_USAGE  # --input missing
    bad_pair = cli("models", "list", "--tag", "novalue")
    assert bad_pair.exit_code == EXIT_USAGE
    assert bad_pair.stderr.strip() == "error: --tag 'novalue': expected KEY=VALUE"
    bad_ref = cli("models", "show", "churn:two")
    assert bad_ref.exit_code == EXIT_USAGE
    assert bad_ref.stderr.count("\n") == 1 and "version must be a positive integer" in bad_ref.stderr


def test_config_error_exits_2_for_any_command(cli, tmp_path):
    (tmp_path / "modelyard.toml").write_text('[runtime]\nuse = "nope"\n')
    result = cli("models", "list")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.splitlines()[0] == "modelyard.toml: 1 error"
    assert "'nope' is not an installed runtime" in result.stderr


class Failing:
    """A plugin whose commands fail in the ways commands can fail."""

    @hookimpl
    def modelyard_cli_commands(self, cli):
        """Add ``lost`` (NotFound) and ``crash`` (an unexpected error)."""

        @cli.command("lost")
        def lost() -> None:
            raise NotFound("model 'churn' does not exist")

        @cli.command("crash")
        def crash() -> None:
            raise RuntimeError("boom")


def test_errors_from_any_command_become_one_stderr_line_and_exit_1(cli):
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("failing", Failing())])
    lost = cli("lost", pm=pm)
    assert lost.exit_code == EXIT_FAILED
    assert lost.stderr == "error: model 'churn' does not exist\n"
    assert lost.stdout == ""
    crash = cli("crash", pm=pm)
    assert crash.exit_code == EXIT_FAILED
    assert crash.stderr == "error: unexpected RuntimeError: boom\n"


class Chatty:
    """A plugin command that logs one line."""

    @hookimpl
    def modelyard_cli_commands(self, cli):
        """Add ``chat``."""

        @cli.command("chat")
        def chat() -> None:
            structlog.get_logger("chatty").info("said hello")
            typer.echo("ok")


def test_each_invocation_logs_with_its_own_operation_id(cli):
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("chatty", Chatty())])
    ids = []
    for _ in range(2):
        result = cli("chat", pm=pm)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == "ok\n"
        (line,) = [json.loads(x) for x in result.stderr.splitlines() if "said hello" in x]  # JSON off a TTY
        assert line["command"] == "chat"
        ids.append(line["operation_id"])
    assert len(set(ids)) == 2 and all(len(i) == 16 for i in ids)
    assert structlog.contextvars.get_contextvars() == {}  # nothing leaks past the invocation


def test_server_only_refuses_local_only_commands(cli):
    class Serve:
        @hookimpl
        def modelyard_cli_commands(self, cli):
            @cli.command("serve-ish")
            def serve_ish(ctx: typer.Context) -> None:
                from modelyard.cli import get_state

                get_state(ctx).open_platform()

    pm = get_plugin_manager(load_entrypoints=False, plugins=[("serve", Serve())])
    result = cli("--server", "http://127.0.0.1:1", "serve-ish", pm=pm)
    assert result.exit_code == EXIT_USAGE
    assert "cannot be used with --server" in result.stderr


# --------------------------------------------------------------------------------------------- parsing
def test_parse_pairs():
    assert parse_pairs(["team=growth", "url=a=b", "team=core"], option="--tag") == {"team": "core", "url": "a=b"}
    assert parse_pairs(None, option="--tag") == {}
    with pytest.raises(InvalidInput, match="expected KEY=VALUE"):
        parse_pairs(["=x"], option="--tag")


SPECS_ONE = [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
SPECS_TWO = [{"name": "a", "datatype": "INT64", "shape": [-1]}, {"name": "b", "datatype": "BOOL", "shape": [-1]}]


def test_predict_input_forms(tmp_path):
    value, _ = read_input_text('{"x": [[1, 2, 3]]}')
    named = to_named_inputs(value, SPECS_ONE)
    assert named["x"].dtype == np.float32 and named["x"].tolist() == [[1, 2, 3]]

    value, _ = read_input_text("[[1, 2, 3], [4, 5, 6]]")  # a bare list: the single input
    assert to_named_inputs(value, SPECS_ONE)["x"].shape == (2, 3)

    (tmp_path / "in.json").write_text('{"a": [1, 2], "b": [true, false]}')
    value, source = read_input_text(f"@{tmp_path / 'in.json'}")
    named = to_named_inputs(value, SPECS_TWO, source=source)
    assert named["a"].dtype == np.int64 and named["b"].dtype == np.bool_

    np.save(tmp_path / "in.npy", np.ones((2, 3), dtype=np.float64))
    value, _ = read_input_text(f"@{tmp_path / 'in.npy'}")
    assert to_named_inputs(value, SPECS_ONE)["x"].dtype == np.float32

    np.savez(tmp_path / "in.npz", a=np.arange(2), b=np.array([True, False]))
    value, _ = read_input_text(f"@{tmp_path / 'in.npz'}")
    assert set(to_named_inputs(value, SPECS_TWO)) == {"a", "b"}


def test_predict_input_errors(tmp_path):
    with pytest.raises(InvalidInput, match="invalid JSON"):
        read_input_text("{x: 1}")
    with pytest.raises(InvalidInput, match="no such file"):
        read_input_text(f"@{tmp_path / 'absent.json'}")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInput, match="not a readable numpy file"):
        read_input_text(f"@{tmp_path / 'obj.npy'}")  # never unpickle
    with pytest.raises(InvalidInput, match="the model takes 2 inputs"):
        to_named_inputs([1, 2], SPECS_TWO)
    with pytest.raises(InvalidInput, match="unknown input"):
        to_named_inputs({"y": [[1, 2, 3]]}, SPECS_ONE)
    with pytest.raises(InvalidInput, match="cannot be read as FP32"):
        to_named_inputs({"x": [["a", "b"]]}, SPECS_ONE)
    with pytest.raises(InvalidInput, match="expected a JSON object"):
        to_named_inputs(3, SPECS_ONE)


def test_jsonable():
    out = jsonable({"y": np.array([[1.5]], dtype=np.float32), "label": np.array([b"cat"], dtype=object),
                    "n": np.int64(3)})
    assert out == {"y": [[1.5]], "label": ["cat"], "n": 3}
    json.dumps(out)
