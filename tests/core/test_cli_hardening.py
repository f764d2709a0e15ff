"""Bad input on the command line and in the config file: every case exits 2 with a config or usage error that
names the file, key or option — never "unexpected …" with exit 1 — and a command acting on a local platform
prints its output or its one error line, not the platform's JSON log records."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import structlog
import typer
from modelyard import hookimpl
from modelyard import log as logconf
from modelyard.cli import EXIT_FAILED, EXIT_USAGE, build_app, get_state
from modelyard.cli.output import print_json
from modelyard.plugins import get_plugin_manager
from typer.testing import CliRunner


@pytest.fixture
def cli(fake_pm_factory, tmp_path, monkeypatch):
    """The CLI in an empty directory, platforms assembled from the fake plugins."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, pm=None, **kwargs):
        return runner.invoke(build_app(pm, plugin_manager_factory=fake_pm_factory), list(args), **kwargs)

    return invoke


@pytest.fixture
def real(tmp_path, monkeypatch):
    """The CLI on the installed plugins (the embedded stack), in an empty directory."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    return lambda *args, **kwargs: runner.invoke(build_app(), list(args), **kwargs)


@pytest.fixture(autouse=True)
def _logging_released():
    yield
    assert not logconf.pinned(), "a command left logging pinned"


def _usage_text(stderr: str) -> str:
    """A usage error's text without rich's box drawing and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", stderr).split())


def _no_log_records(stderr: str) -> None:
    for line in stderr.splitlines():
        assert not line.lstrip().startswith("{"), f"a JSON log record on stderr: {line}"
        assert "unexpected" not in line, line


# --------------------------------------------------------------------------------------------- the config file
@pytest.mark.parametrize("command", [("check",), ("models", "list")])
def test_a_config_that_is_not_utf8_is_a_config_error_naming_the_file_and_line(cli, tmp_path, command):
    (tmp_path / "latin1.toml").write_bytes('[registry]\nurl = "sqlite:///x.db"\n# café\n'.encode("latin-1"))
    result = cli("-c", "latin1.toml", *command)
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.splitlines() == [
        "latin1.toml: 1 error",
        "  line 3     not UTF-8 text: byte 0xe9 at offset 39 cannot be decoded; TOML files are UTF-8 — save the "
        "file in that encoding",
    ]
    assert result.stdout == ""


def test_a_config_error_as_json_names_the_file(cli, tmp_path):
    (tmp_path / "bad.toml").write_bytes(b"\xff\xfe[platform]\n")
    result = cli("-c", "bad.toml", "models", "list", "--json")
    assert result.exit_code == EXIT_USAGE
    error = json.loads(result.stdout)["error"]
    assert (error["type"], error["message"]) == ("ConfigError", "bad.toml: 1 error")
    assert error["issues"][0]["line"] == 1 and "not UTF-8 text" in error["issues"][0]["message"]


def test_a_byte_order_mark_is_not_an_error(cli, tmp_path):
    (tmp_path / "modelyard.toml").write_bytes(b"\xef\xbb\xbf" + b'[runtime]\nuse = "local"\nworkers = 3\n')
    result = cli("check", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["slots"]["runtime"] == ["local"]


@pytest.mark.parametrize(("value", "shown", "example"), [
    ("${env:DB_URL", "'${env:DB_URL'", "${env:NAME}"),
    ("sqlite:///${env:HOME/x.db", "'${env:HOME/x.db'", "${env:NAME}"),
    ("${secret:db/ml#password", "'${secret:db/ml#password'", "${secret:path#key}"),
    ("${env:A}${env:B", "'${env:B'", "${env:NAME}"),
])  # fmt: skip
def test_an_unclosed_reference_is_a_config_error_naming_the_key(cli, tmp_path, value, shown, example):
    (tmp_path / "modelyard.toml").write_text(f'[platform]\nlog_level = "info"\n\n[registry]\nurl = "{value}"\n')
    result = cli("check", env={"A": "a", "DB_URL": "sqlite:///x.db", "HOME": "/home/x"})
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.splitlines() == [
        "modelyard.toml: 1 error",
        f"  line 5   [registry] url  unclosed reference {shown}: no closing brace; write {example}",
    ]


def test_an_unclosed_reference_in_a_dict_config_is_caught_too(fake_pm):
    from modelyard.errors import ConfigError
    from modelyard.platform import resolve

    with pytest.raises(ConfigError) as info:
        resolve({"storage": {"url": "s3://${env:BUCKET"}}, plugin_manager=fake_pm, environ={})
    (issue,) = info.value.issues
    assert (issue.section, issue.key) == ("storage", "url") and "unclosed reference" in issue.message


def test_closed_references_and_lone_dollar_braces_are_fine(cli, tmp_path):
    (tmp_path / "modelyard.toml").write_text('[storage]\nurl = "${env:ROOT}/x"\n[registry]\nurl = "${HOME}"\n')
    assert cli("check", env={"ROOT": "/srv"}).exit_code == 0  # ${HOME} is no reference of ours: plain text


@pytest.mark.parametrize(("args", "message"), [
    (("-c", "absent.toml", "models", "list"), "config file 'absent.toml' does not exist"),
    (("-c", ".", "check"), "cannot read config file: Is a directory"),
])  # fmt: skip
def test_a_config_file_that_cannot_be_read(cli, args, message):
    result = cli(*args)
    assert result.exit_code == EXIT_USAGE
    assert message in result.stderr.splitlines()[1]


def test_a_huge_config_file_is_refused_without_reading_it_all(cli, tmp_path):
    (tmp_path / "huge.toml").write_bytes(b"#" * (5 * 2**20))
    result = cli("-c", "huge.toml", "check")
    assert result.exit_code == EXIT_USAGE
    assert "larger than 4 MiB" in result.stderr


# --------------------------------------------------------------------------------------------- the data dir
def test_a_data_dir_under_a_file_is_reported_by_check(cli, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "modelyard.toml").write_text('[platform]\ndata_dir = "afile/data"\n')
    for command in (("check",), ("models", "list")):
        result = cli(*command)
        assert result.exit_code == EXIT_USAGE, command
        assert result.stderr.splitlines() == [
            "modelyard.toml: 1 error",
            f"  line 2   [platform] data_dir  '{tmp_path / 'afile' / 'data'}' cannot be created: "
            f"'{tmp_path / 'afile'}' is a file, not a directory",
        ]
    checked = json.loads(cli("check", "--json").stdout)
    assert checked["errors"][0]["key"] == "data_dir" and checked["errors"][0]["given"] == "afile/data"


def test_a_data_dir_that_is_a_file_is_reported(cli, tmp_path):
    (tmp_path / "data").write_text("")
    (tmp_path / "modelyard.toml").write_text(f'[platform]\ndata_dir = "{tmp_path / "data"}"\n')
    result = cli("check")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.splitlines()[1].endswith(f"'{tmp_path / 'data'}' exists and is not a directory")


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc, where nothing can be created")
def test_a_data_dir_that_cannot_be_created_is_reported(cli, tmp_path):
    (tmp_path / "modelyard.toml").write_text('[platform]\ndata_dir = "/proc/modelyard-test/data"\n')
    result = cli("check")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.splitlines()[1].startswith(
        "  line 2   [platform] data_dir  '/proc/modelyard-test/data' cannot be created in '/proc': ")


def test_an_unwritable_data_dir_is_reported(cli, tmp_path):
    """A directory no one may create under: a mode-0500 one for a normal user; as root (who may write
    anywhere the permissions say no) a directory under /proc, which refuses even root."""
    import os

    as_root = os.geteuid() == 0
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    target = "/proc/modelyard-data" if as_root else "locked/data"
    (tmp_path / "modelyard.toml").write_text(f'[platform]\ndata_dir = "{target}"\n')
    try:
        result = cli("check")
    finally:
        locked.chmod(0o700)
    assert result.exit_code == EXIT_USAGE
    assert "[platform] data_dir" in result.stderr and target in result.stderr


def test_a_nul_in_the_data_dir_is_reported(cli, tmp_path):
    (tmp_path / "modelyard.toml").write_text('[platform]\ndata_dir = "data\\u0000dir"\n')
    result = cli("check")
    assert result.exit_code == EXIT_USAGE
    assert "[platform] data_dir  'data\\x00dir' is not a usable path" in result.stderr


def test_check_creates_no_data_dir(cli, tmp_path):
    (tmp_path / "modelyard.toml").write_text('[platform]\ndata_dir = "not/yet/there"\n')
    assert cli("check").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["modelyard.toml"]


# --------------------------------------------------------------------------------------------- options
class PortCommand:
    """A plugin command with a ``--port`` option and a float option, as the server's ``serve`` has."""

    calls: list[tuple[int, float]] = []

    @hookimpl
    def modelyard_cli_commands(self, cli):
        """Add ``listen``."""

        @cli.command("listen")
        def listen(port: int = typer.Option(8000, "--port"), grace: float = typer.Option(1.0, "--grace"),
                   json_: bool = typer.Option(False, "--json")) -> None:
            PortCommand.calls.append((port, grace))


@pytest.mark.parametrize(("value", "message"), [
    ("abc", "Invalid value for '--port'"),
    ("70000", "Invalid value for '--port': 70000 is not a TCP port: expected 0 to 65535 (0 picks a free port)"),
    ("-1", "Invalid value for '--port': -1 is not a TCP port: expected 0 to 65535 (0 picks a free port)"),
    ("65536", "65536 is not a TCP port"),
])  # fmt: skip
def test_an_invalid_port_is_a_usage_error_naming_the_option(cli, value, message):
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("port", PortCommand())])
    PortCommand.calls.clear()
    result = cli("listen", "--port", value, pm=pm)
    assert result.exit_code == EXIT_USAGE
    assert message in _usage_text(result.stderr)
    _no_log_records(result.stderr)
    assert PortCommand.calls == []  # refused while parsing: the command never ran
    for edge in ("0", "65535"):
        assert cli("listen", "--port", edge, pm=pm).exit_code == 0
    assert PortCommand.calls == [(0, 1.0), (65535, 1.0)]


def test_an_invalid_port_with_json_is_a_json_error(cli):
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("port", PortCommand())])
    result = cli("listen", "--json", "--port", "70000", pm=pm)
    assert result.exit_code == EXIT_USAGE
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "BadParameter" and "'--port'" in error["message"]


@pytest.mark.parametrize("value", ["70000", "-1", "abc"])
def test_the_servers_own_serve_command_refuses_a_bad_port_before_starting(real, value):
    result = CliRunner().invoke(build_app(get_plugin_manager()), ["serve", "--dev", "--port", value])
    assert result.exit_code == EXIT_USAGE
    assert "Invalid value for '--port'" in _usage_text(result.stderr)
    _no_log_records(result.stderr)
    assert not Path(".modelyard").exists()  # nothing was assembled


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_numbers_must_be_finite(cli, value):
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("port", PortCommand())])
    result = cli("listen", "--grace", value, pm=pm)
    assert result.exit_code == EXIT_USAGE
    assert "Invalid value for '--grace'" in _usage_text(result.stderr)
    deploy = cli("deploy", "churn", "--max-wait-ms", value)
    assert deploy.exit_code == EXIT_USAGE and "Invalid value for '--max-wait-ms'" in _usage_text(deploy.stderr)


def test_text_that_is_not_utf8_is_a_usage_error_naming_the_option(cli):
    result = cli("models", "list", "--prefix", "caf\udce9")  # what Python makes of a latin-1 byte in argv
    assert result.exit_code == EXIT_USAGE
    assert ("Invalid value for '--prefix': 'caf\\udce9' is not UTF-8 text (the bytes b'caf\\xe9')"
            in _usage_text(result.stderr))


def test_a_non_utf8_file_name_that_exists_is_accepted(cli, tmp_path):
    name = "in-\udce9.json"  # a file name in another encoding is still a file name
    (tmp_path / name).write_text('{"x": [[1, 2, 3]]}')
    result = cli("predict", "churn", "--input", f"@{name}")
    assert "not UTF-8" not in result.stderr  # it got past parsing (and failed later: nothing is deployed)
    assert result.exit_code == EXIT_FAILED


def test_json_output_survives_text_stdout_cannot_encode(monkeypatch):
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", out)
    print_json({"name": "caf\udce9", "ok": "é"})
    out.seek(0)
    assert json.loads(out.read()) == {"name": "caf\udce9", "ok": "é"}


@pytest.mark.parametrize(("args", "line"), [
    (("--options", "{bad"), "error: --options value: invalid JSON: Expecting property name enclosed in double "
                            "quotes: line 1 column 2 (char 1)"),
    (("--options", "[1, 2]"), "error: --options: expected a JSON object, got list"),
    (("--options", "@absent.json"), "error: --options @absent.json: no such file"),
    (("--option", "novalue"), "error: --option 'novalue': expected KEY=VALUE"),
    (("--sample-input", "x=[[1, 2], [3]]"), None),
    (("--sample-input", "@absent.npz"), "error: --sample-input @absent.npz: no such file"),
    (("--expected-output", "{\"y\": [1]"), None),
])  # fmt: skip
def test_bad_register_options_are_one_line_usage_errors(cli, tmp_path, args, line):
    (tmp_path / "model.onnx").write_bytes(b"weights")
    result = cli("models", "register", "churn", "model.onnx", "--flavor", "onnx", *args)
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    if line is not None:
        assert result.stderr == line + "\n"


def test_bad_prediction_inputs_are_one_line_usage_errors(cli, tmp_path):
    (tmp_path / "latin1.json").write_bytes('{"x": "é"}'.encode("latin-1"))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for value in ("{not json", "@absent.json", "@latin1.json", "@objects.npy", "@."):
        result = cli("predict", "churn", "--input", value)
        assert result.exit_code == EXIT_USAGE, value
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr


def test_init_into_an_impossible_place_is_a_usage_error(cli, tmp_path):
    (tmp_path / "afile").write_text("")
    result = cli("init", "afile/sub/modelyard.toml")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == "error: cannot write 'afile/sub/modelyard.toml': a folder on the way is a file\n"


@pytest.mark.parametrize("name", ["\uff43\uff48\uff55\uff52\uff4e", "\u202eevil", "churn\u200b", "../etc", "名前"])
def test_odd_unicode_in_names_is_a_usage_error(cli, name):
    result = cli("models", "show", name)
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.count("\n") == 1 and "is not a valid name" in result.stderr


# --------------------------------------------------------------------------------------------- log lines
def test_an_embedded_command_prints_only_its_error_line(real, tiny_models):
    # A fresh data dir: assembling the platform migrates the registry, which logs (at info).
    lost = real("models", "show", "nope")
    assert lost.exit_code == EXIT_FAILED
    assert lost.stderr == "error: model 'nope' does not exist\n"
    assert lost.stdout == ""

    Path("not-a-model.onnx").write_bytes(b"hello")
    bad = real("models", "register", "m", "not-a-model.onnx", "--flavor", "onnx")
    assert bad.exit_code == EXIT_FAILED
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: not an ONNX model")

    as_json = real("models", "show", "nope", "--json")
    assert json.loads(as_json.stdout)["error"]["type"] == "NotFound"
    assert as_json.stderr == "error: model 'nope' does not exist\n"

    one, _ = tiny_models
    ok = real("models", "register", "m", str(one.path), "--flavor", "onnx", "--json")
    assert ok.exit_code == 0, ok.stderr
    assert ok.stderr == "" and json.loads(ok.stdout)["version"] == 1


def test_verbose_shows_the_platform_log(real):
    result = real("-v", "models", "list", "--json")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert "registry schema migrated" in {r["event"] for r in records}
    assert json.loads(result.stdout)["total"] == 0
    assert real("models", "list", "--json").stderr == ""  # and without -v, nothing


class Warns:
    """A plugin command that uses the local platform and logs a warning and an info line."""

    @hookimpl
    def modelyard_cli_commands(self, cli):
        """Add ``tidy``."""

        @cli.command("tidy")
        def tidy(ctx: typer.Context) -> None:
            get_state(ctx).backend()
            log = structlog.get_logger("tidy")
            log.info("tidying")
            try:
                raise ValueError("disk says no")
            except ValueError:
                log.warning("could not tidy", path="/data/x", exc_info=True)
            typer.echo("done")


def test_warnings_of_an_embedded_command_are_one_plain_line_each(cli):
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("warns", Warns())])
    result = cli("tidy", pm=pm)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "done\n"
    assert result.stderr == "warning: could not tidy (path=/data/x) — ValueError: disk says no\n"
