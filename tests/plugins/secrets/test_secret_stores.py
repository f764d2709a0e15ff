"""What the ``env`` and ``file`` secrets stores promise beyond the conformance kit: the env mapping, both file
layouts, errors that never show a value, and ``${secret:…}`` resolved through ``Platform.from_config``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import structlog
from modelyard import Platform
from modelyard.errors import ConfigError, InvalidInput, NotFound
from modelyard.plugins import collect_providers, get_plugin_manager
from modelyard.testing.secrets import captured_log
from modelyard_plugins.secrets.env import EnvSecretsConfig, EnvSecretStore, env_var_name
from modelyard_plugins.secrets.file import FileSecretsConfig, FileSecretStore
from secret_files import toml_string, write_directory, write_single_file


def _unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


def test_both_providers_are_offered_through_the_entry_point() -> None:
    secrets = collect_providers(get_plugin_manager())["secrets"]
    assert secrets["env"].provider.config_schema is EnvSecretsConfig
    assert secrets["file"].provider.config_schema is FileSecretsConfig
    assert {secrets["env"].plugin, secrets["file"].plugin} == {"secrets"}


# --------------------------------------------------------------------------------------------- env
@pytest.mark.parametrize(("path", "key", "prefix", "expected"), [
    ("db/ml", "password", "MODELYARD_SECRET_", "MODELYARD_SECRET_DB_ML_PASSWORD"),
    ("team/growth", "api-key", "MODELYARD_SECRET_", "MODELYARD_SECRET_TEAM_GROWTH_API_KEY"),
    ("s3.prod", "Secret Key", "ACME_", "ACME_S3_PROD_SECRET_KEY"),
    ("aws", "secret_access_key", "", "AWS_SECRET_ACCESS_KEY"),
])
def test_env_variable_names(path: str, key: str, prefix: str, expected: str) -> None:
    assert env_var_name(path, key, prefix) == expected


def test_env_reads_the_live_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    store = EnvSecretStore()
    with pytest.raises(NotFound, match="MODELYARD_SECRET_DB_ML_PASSWORD is not set"):
        store.get("db/ml", "password")
    monkeypatch.setenv("MODELYARD_SECRET_DB_ML_PASSWORD", "first-value")
    assert store.get("db/ml", "password") == "first-value"
    monkeypatch.setenv("MODELYARD_SECRET_DB_ML_PASSWORD", "rotated-value")
    assert store.get("db/ml", "password") == "rotated-value"


def test_env_prefix_is_validated(tmp_path: Path) -> None:
    config = {"platform": {"data_dir": str(tmp_path)}, "secrets": {"use": "env", "prefix": "MY-PREFIX"}}
    # attrs validators run after conversion, so the report names the section; the message names the key.
    with pytest.raises(ConfigError, match=r"\[secrets\].*prefix 'MY-PREFIX' may hold only ASCII letters"):
        Platform.from_config(config)


# --------------------------------------------------------------------------------------------- file
def test_directory_prefers_the_plain_file_then_dot_toml(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "ml.toml").write_text('password = "from-dot-toml"\n')
    store = FileSecretStore.from_path(tmp_path)
    assert store.get("db/ml", "password") == "from-dot-toml"
    (tmp_path / "db" / "ml").write_text('password = "from-plain"\n')
    assert store.get("db/ml", "password") == "from-plain"


def test_single_file_nested_tables_and_quoted_segments(tmp_path: Path) -> None:
    file = tmp_path / "secrets.toml"
    file.write_text('[db.ml]\npassword = "nested"\n\n[team."eu.west"]\ntoken = "dotted-segment"\n')
    store = FileSecretStore.from_path(file)
    assert store.get("db/ml", "password") == "nested"
    assert store.get("team/eu.west", "token") == "dotted-segment"
    with pytest.raises(NotFound, match=r"no table \[db.ml.extra\]"):
        store.get("db/ml/extra", "password")
    with pytest.raises(NotFound, match=r"no table \[db.ml.password\]"):
        store.get("db/ml/password", "x")  # a value is not a table


def test_files_are_read_at_each_lookup(tmp_path: Path) -> None:
    file = write_single_file(tmp_path / "s.toml", {("db/ml", "password"): "before-rotation"})
    store = FileSecretStore.from_path(file)
    assert store.get("db/ml", "password") == "before-rotation"
    write_single_file(file, {("db/ml", "password"): "after-rotation"})
    assert store.get("db/ml", "password") == "after-rotation"


def test_traversal_cannot_read_a_neighbouring_file(tmp_path: Path) -> None:
    write_directory(tmp_path / "secrets", {("db/ml", "password"): "inside"})
    (tmp_path / "outside").write_text('password = "outside-value"\n')
    store = FileSecretStore.from_path(tmp_path / "secrets")
    for path in ("../outside", "db/../../outside", str(tmp_path / "outside")):
        with pytest.raises(InvalidInput) as info:
            store.get(path, "password")
        assert "outside-value" not in str(info.value)


def test_a_value_that_is_not_a_string_is_refused_without_showing_it(tmp_path: Path) -> None:
    file = tmp_path / "s.toml"
    file.write_text('[db]\nport = 918273\npool = { size = 5 }\n')
    store = FileSecretStore.from_path(file)
    with pytest.raises(InvalidInput, match="is an integer, expected a string") as info:
        store.get("db", "port")
    assert "918273" not in str(info.value)
    with pytest.raises(InvalidInput, match="is a table"):
        store.get("db", "pool")


def test_invalid_toml_is_reported_without_its_content(tmp_path: Path) -> None:
    file = tmp_path / "s.toml"
    file.write_text('[db.ml]\npassword = "hunter2-unterminated\n')
    store = FileSecretStore.from_path(file)
    with pytest.raises(InvalidInput, match="is not valid TOML") as info:
        store.get("db/ml", "password")
    assert str(file) in str(info.value) and "hunter2" not in str(info.value)


def test_a_missing_secrets_path_fails_at_startup(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        FileSecretStore.from_path(tmp_path / "nowhere.toml")
    config = {"platform": {"data_dir": str(tmp_path)}, "secrets": {"use": "file", "path": str(tmp_path / "nope")}}
    with pytest.raises(ConfigError, match=r"cannot start secrets provider: secrets path .*nope.* does not exist"):
        Platform.from_config(config)
    with pytest.raises(ConfigError, match=r"\[secrets\] path .*missing required key"):
        Platform.from_config({"platform": {"data_dir": str(tmp_path)}, "secrets": {"use": "file"}})


# --------------------------------------------------------------------------------------------- assembly
def _storage_token(platform: Platform) -> str:
    return platform.config.one("storage").config.options["token"]


def test_env_secret_resolves_in_config_and_is_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = _unique("env-secret")
    monkeypatch.setenv("MODELYARD_SECRET_S3_PROD_TOKEN", value)
    config = {"platform": {"data_dir": str(tmp_path / "data"), "log_level": "warning"},
              "storage": {"url": f"memory://{_unique('store')}", "options": {"token": "${secret:s3/prod#token}"}}}
    with Platform.from_config(config) as platform:
        assert isinstance(platform.secrets, EnvSecretStore)
        assert _storage_token(platform) == value
        with captured_log() as buffer:
            structlog.get_logger("test").warning("storage options", options=dict(platform.config.one(
                "storage").config.options), note=f"token is {value}")
    line = json.loads(buffer.getvalue().strip().splitlines()[-1])
    assert line["options"] == {"token": "***"} and line["note"] == "token is ***"
    assert value not in buffer.getvalue()


def test_file_secret_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = _unique("file-secret")
    project = tmp_path / "project"
    project.mkdir()
    (project / "secrets.toml").write_text(f"[s3.prod]\ntoken = {toml_string(value)}\n")
    (project / "modelyard.toml").write_text(
        '[platform]\ndata_dir = "data"\nlog_level = "warning"\n\n'
        '[secrets]\nuse = "file"\npath = "secrets.toml"\n\n'
        f'[storage]\nurl = "memory://{_unique("store")}"\noptions = {{ token = "${{secret:s3/prod#token}}" }}\n')
    monkeypatch.chdir(tmp_path)  # the secrets path is relative to the config file, not to the working dir
    with Platform.from_config(project / "modelyard.toml") as platform:
        assert isinstance(platform.secrets, FileSecretStore)
        assert _storage_token(platform) == value


def test_missing_secret_is_a_config_error_naming_the_reference(tmp_path: Path) -> None:
    write_single_file(tmp_path / "s.toml", {("s3/prod", "other"): "do-not-show-this-value"})
    config = {"platform": {"data_dir": str(tmp_path / "data")},
              "secrets": {"use": "file", "path": str(tmp_path / "s.toml")},
              "storage": {"options": {"token": "${secret:s3/prod#token}"}}}
    with pytest.raises(ConfigError) as info:
        Platform.from_config(config)
    report = str(info.value)
    assert "[storage] options.token" in report and "s3/prod#token not found" in report
    assert "do-not-show-this-value" not in report
