"""The one config file: every problem reported at once, with line, section, key and a remedy (DESIGN "One config
file"); interpolation of ``${env:…}`` and ``${secret:…}``; strict types; and hypothesis properties over random
valid configs and configs with injected errors."""

from __future__ import annotations

import json
import subprocess
import typing
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelyard import hookimpl
from modelyard.cli import build_app
from modelyard.config import load_raw
from modelyard.errors import ConfigError
from modelyard.platform import resolve_config
from modelyard.providers import SLOTS, ConfigSection
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
MODELYARD = ROOT / ".venv" / "bin" / "modelyard"

DESIGN_EXAMPLE = """\
[registy]
url = "sqlite:///models.db"

[runtime]
use = "nope"

[storage]
use = "fsspec"
url = 42
"""


def _resolve(source: Any, pm, environ: dict[str, str] | None = None):
    resolved, _pm, store = resolve_config(source, plugin_manager=pm, environ=environ or {})
    if store is not None:
        store.close()
    return resolved


def _errors(source: Any, pm, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _resolve(source, pm, environ)
    return info.value


# --------------------------------------------------------------------------------------------- the DESIGN bar
def test_design_example_reports_all_three_errors_in_one_report(tmp_path, monkeypatch, fake_pm):
    monkeypatch.chdir(tmp_path)
    Path("modelyard.toml").write_text(DESIGN_EXAMPLE)
    exc = _errors("modelyard.toml", fake_pm)

    assert [(i.line, i.section, i.key) for i in exc.issues] == [(1, "registy", None), (5, "runtime", "use"),
                                                                (9, "storage", "url")]
    section, provider, wrong_type = exc.issues
    assert "unknown section — did you mean [registry]?" in section.message
    assert provider.given == "nope"
    assert "'nope' is not an installed runtime; installed: local, ray (ray needs: pip install 'modelyard[ray]')" \
        in provider.message
    assert wrong_type.message == "expected a string, got the integer 42"
    report = exc.report().splitlines()
    assert report[0] == "modelyard.toml: 3 errors"
    assert report[1].split() [:4] == ["line", "1", "[registy]", "unknown"]
    assert "line 5" in report[2] and "[runtime] use" in report[2]
    assert "line 9" in report[3] and "[storage] url" in report[3] and "got the integer 42" in report[3]


def test_check_exits_2_with_the_full_report(tmp_path, monkeypatch, fake_pm_factory):
    monkeypatch.chdir(tmp_path)
    Path("modelyard.toml").write_text(DESIGN_EXAMPLE)
    result = CliRunner().invoke(build_app(plugin_manager_factory=fake_pm_factory), ["check"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == "modelyard.toml: 3 errors"
    assert "did you mean [registry]?" in result.stderr
    assert "(ray needs: pip install 'modelyard[ray]')" in result.stderr

    as_json = CliRunner().invoke(build_app(plugin_manager_factory=fake_pm_factory), ["check", "--json"])
    assert as_json.exit_code == 2
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is False
    assert [(e["line"], e["section"], e["key"]) for e in doc["errors"]] == [(1, "registy", None),
                                                                           (5, "runtime", "use"),
                                                                           (9, "storage", "url")]


def test_installed_modelyard_check_exits_2_on_the_design_example(tmp_path):
    """The real script, real plugins: the exit code and the three reported problems."""
    cfg = tmp_path / "modelyard.toml"
    cfg.write_text(DESIGN_EXAMPLE)
    proc = subprocess.run([str(MODELYARD), "-c", str(cfg), "check"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "line 1" in proc.stderr and "did you mean [registry]?" in proc.stderr
    assert "'nope' is not an installed runtime" in proc.stderr
    assert "[storage] url" in proc.stderr and "got the integer 42" in proc.stderr


# --------------------------------------------------------------------------------------------- keys and types
def test_unknown_key_in_provider_section_suggests_the_close_one(tmp_path, fake_pm):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[registry]\nuse = "sql"\npool_sise = 3\n')
    (issue,) = _errors(cfg, fake_pm).issues
    assert (issue.line, issue.section, issue.key) == (3, "registry", "pool_sise")
    assert issue.message == "unknown key — did you mean 'pool_size'?"


def test_unknown_key_in_an_option_less_provider_says_so(fake_pm):
    (issue,) = _errors({"auth": {"use": "anonymous", "keys": "x"}}, fake_pm).issues
    assert (issue.section, issue.key) == ("auth", "keys")
    assert "this provider takes no options" in issue.message


@pytest.mark.parametrize(("section", "given", "expected"), [
    ({"runtime": {"workers": "42"}}, "workers", "expected an integer, got the string '42'"),
    ({"registry": {"echo": "true"}}, "echo", "expected a boolean (true or false), got the string 'true'"),
    ({"registry": {"pool_size": True}}, "pool_size", "expected an integer, got the boolean True"),
    ({"registry": {"url": 42}}, "url", "expected a string, got the integer 42"),
    ({"runtime": {"max_wait_ms": "2"}}, "max_wait_ms", "expected a number, got the string '2'"),
    ({"runtime": {"mode": "fast"}}, "mode", "expected one of 'threads', 'inline', got the string 'fast'"),
    ({"storage": {"options": 42}}, "options", "expected a table, got the integer 42"),
    ({"builders": {"onnx": {"providers": "CPU"}}}, "onnx.providers",
     "expected a list of strings, got the string 'CPU'"),
    ({"platform": {"disable": "ray"}}, "disable", "expected a list of strings, got the string 'ray'"),
])  # fmt: skip
def test_types_are_strict_nothing_is_coerced(fake_pm, section, given, expected):
    (issue,) = _errors(section, fake_pm).issues
    assert issue.key == given
    assert issue.message == expected


def test_an_integer_is_a_valid_number(fake_pm):
    resolved = _resolve({"runtime": {"max_wait_ms": 3}}, fake_pm)
    assert resolved.one("runtime").config.max_wait_ms == 3.0


def test_providers_receive_typed_config_with_defaults(fake_pm):
    resolved = _resolve({"registry": {"url": "sqlite:///x.db", "echo": True}}, fake_pm)
    config = resolved.one("registry").config
    assert (config.url, config.pool_size, config.echo) == ("sqlite:///x.db", 5, True)
    assert resolved.one("runtime").provider.name == "local"


def test_unknown_builder_flavor_and_missing_requirements(fake_pm):
    exc = _errors({"builders": {"onx": {}}, "runtime": {"use": "ray"}}, fake_pm)
    by_section = {i.section: i for i in exc.issues}
    assert "'onx' is not an installed builder — did you mean 'onnx'?" in by_section["builders"].message
    assert by_section["runtime"].message.endswith("pip install 'modelyard[ray]'")


def test_monitors_must_be_a_list_of_tables(fake_pm):
    (issue,) = _errors({"monitors": {"use": "log"}}, fake_pm).issues
    assert "[[monitors]]" in issue.message


# --------------------------------------------------------------------------------------------- interpolation
def test_env_reference_is_resolved(fake_pm):
    resolved = _resolve({"registry": {"url": "postgresql://ml@${env:DB_HOST}:5432/ml"}}, fake_pm,
                        {"DB_HOST": "db.internal"})
    assert resolved.one("registry").config.url == "postgresql://ml@db.internal:5432/ml"


def test_missing_env_var_is_reported_with_its_location(tmp_path, fake_pm):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[storage]\nuse = "fsspec"\noptions = { endpoint_url = "${env:S3_ENDPOINT}" }\n')
    (issue,) = _errors(cfg, fake_pm).issues
    assert (issue.line, issue.section, issue.key) == (3, "storage", "options.endpoint_url")
    assert "environment variable 'S3_ENDPOINT' is not set" in issue.message


def test_env_default_applies_only_when_unset(fake_pm):
    source = {"storage": {"url": "${env:MODELS_URL:-file:///tmp/models}"}}
    assert _resolve(source, fake_pm).one("storage").config.url == "file:///tmp/models"
    assert _resolve(source, fake_pm, {"MODELS_URL": "s3://b/p"}).one("storage").config.url == "s3://b/p"


def test_interpolated_value_is_still_type_checked(fake_pm):
    # "${env:N}" yields a string; an int field does not silently accept it.
    (issue,) = _errors({"runtime": {"workers": "${env:N}"}}, fake_pm, {"N": "4"}).issues
    assert issue.message == "expected an integer, got the string '4'"


def test_secret_reference_through_a_secrets_provider(fake_pm, monkeypatch):
    monkeypatch.setenv("MODELYARD_TEST_SECRET__db/ml__password", "s3cr3t-pw")
    resolved = _resolve({"registry": {"url": "postgresql+psycopg://ml:${secret:db/ml#password}@db/ml"}}, fake_pm)
    assert resolved.one("registry").config.url == "postgresql+psycopg://ml:s3cr3t-pw@db/ml"

    (issue,) = _errors({"registry": {"url": "${secret:db/ml#missing}"}}, fake_pm).issues
    assert (issue.section, issue.key) == ("registry", "url")
    assert "db/ml#missing" in issue.message

    (issue,) = _errors({"registry": {"url": "${secret:no-key}"}}, fake_pm).issues
    assert "expected ${secret:path#key}" in issue.message


def test_secrets_section_cannot_use_secret_references(fake_pm):
    exc = _errors({"secrets": {"use": "env", "token": "${secret:a#b}"}}, fake_pm)
    assert any("cannot use ${secret:" in i.message for i in exc.issues)


def test_secret_reference_through_the_env_secrets_plugin(monkeypatch, core_fakes):
    """The real ``env`` secrets provider (first-party plugin) reading MODELYARD_SECRET_… variables."""
    secrets_plugin = pytest.importorskip("modelyard_plugins.secrets")
    from modelyard.plugins import get_plugin_manager
    from modelyard.providers import SecretsProvider

    if not any(isinstance(p, SecretsProvider) and p.name == "env"
               for p in secrets_plugin.modelyard_secret_stores()):
        pytest.fail("the secrets plugin must offer the 'env' provider")
    env_var = secrets_plugin.env_var_name("db/ml", "password")
    assert env_var.startswith("MODELYARD_SECRET_")
    monkeypatch.setenv(env_var, "from-the-env-plugin")

    class NoFakeSecrets(core_fakes):  # the other slots; secrets come from the real plugin
        modelyard_secret_stores = None  # type: ignore[assignment]

    pm = get_plugin_manager(load_entrypoints=False, plugins=[("secrets", secrets_plugin), ("fakes", NoFakeSecrets())])
    resolved = _resolve({"registry": {"url": "${secret:db/ml#password}"}}, pm, {env_var: "from-the-env-plugin"})
    assert resolved.one("registry").config.url == "from-the-env-plugin"
    assert resolved.one("secrets").provider.name == "env"


# --------------------------------------------------------------------------------------------- files
def test_invalid_toml_reports_its_line(tmp_path, fake_pm_factory):
    cfg = tmp_path / "modelyard.toml"
    cfg.write_text('[platform]\ndata_dir = "./x"\nlog_level = info\n')
    with pytest.raises(ConfigError) as info:
        load_raw(cfg)
    (issue,) = info.value.issues
    assert issue.line == 3
    assert issue.message.startswith("invalid TOML")

    result = CliRunner().invoke(build_app(plugin_manager_factory=fake_pm_factory), ["-c", str(cfg), "check"])
    assert result.exit_code == 2
    assert "line 3" in result.stderr and "invalid TOML" in result.stderr


def test_missing_config_file_is_a_config_error(tmp_path, fake_pm_factory):
    result = CliRunner().invoke(build_app(plugin_manager_factory=fake_pm_factory),
                                ["-c", str(tmp_path / "absent.toml"), "check"])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_modelyard_config_env_var_chooses_the_file(tmp_path, fake_pm_factory):
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text('[runtime]\nuse = "local"\nworkers = 8\n')
    result = CliRunner().invoke(build_app(plugin_manager_factory=fake_pm_factory), ["check", "--json"],
                                env={"MODELYARD_CONFIG": str(cfg)})
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["file"] == str(cfg)
    assert doc["slots"]["runtime"] == ["local"]


# --------------------------------------------------------------------------------------------- properties
_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="$"), max_size=12)
_NAME = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


def _strategy(tp: Any) -> st.SearchStrategy[Any] | None:
    """Valid TOML values for a schema field type; None where the property does not cover the type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is str:
        return _TEXT
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-(2**40), 2**40)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False, width=64)
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, __import__("types").UnionType):
        # Optional fields: TOML has no null, so None means "leave the key out" (handled by the caller).
        inner = [a for a in args if a is not type(None)]
        return _strategy(inner[0]) if len(inner) == 1 else None
    if origin is list:
        inner = _strategy(args[0])
        return st.lists(inner, max_size=3) if inner is not None else None
    if origin is dict:
        inner = _strategy(args[1])
        return st.dictionaries(_NAME, inner, max_size=3) if inner is not None else None
    return None


def _fields(schema: type) -> dict[str, Any]:
    hints = typing.get_type_hints(schema)
    return {f.name: hints[f.name] for f in attrs.fields(schema)}


def _passes(field: Any, value: Any) -> bool:
    try:
        field.validator(None, field, value)
    except Exception:
        return False
    return True


def _validated(field: Any, tp: Any, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Values of ``strategy`` the field's attrs validator accepts (ranges, mostly): small numbers are drawn
    often enough that a range such as 1..256 is hit without filtering too much."""
    if field.validator is None:
        return strategy
    small = {int: st.integers(0, 300), float: st.floats(0, 300)}.get(tp)
    return (st.one_of(small, strategy) if small is not None else strategy).filter(lambda v: _passes(field, v))


@st.composite
def _options(draw, schema: type) -> dict[str, Any]:
    out = {}
    fields = {f.name: f for f in attrs.fields(schema)}
    for name, tp in _fields(schema).items():
        strategy = _strategy(tp)
        if strategy is not None and draw(st.booleans()):
            out[name] = draw(_validated(fields[name], tp, strategy))
    return out


def _providers(pm) -> dict[str, dict[str, Any]]:
    from modelyard.plugins import collect_providers

    return {slot: {n: e.provider for n, e in entries.items() if not e.provider.missing_requirements()}
            for slot, entries in collect_providers(pm).items()}


@st.composite
def valid_configs(draw, providers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A config made only of installed providers and well-typed option values."""
    config: dict[str, Any] = {}
    if draw(st.booleans()):
        config["platform"] = draw(_options(__import__("modelyard.config", fromlist=["PlatformConfig"]).PlatformConfig))
        config["platform"].pop("disable", None)  # disabling is about plugin managers, not validation
        if "data_dir" in config["platform"]:  # must be creatable: a folder inside the test's own directory
            config["platform"]["data_dir"] = "data-" + config["platform"]["data_dir"].replace("/", "-")
    for slot in SLOTS.values():
        available = providers.get(slot.name) or {}
        if not available or not draw(st.booleans()):
            continue
        if slot.name == "builders":
            config["builders"] = {flavor: draw(_options(p.config_schema))
                                  for flavor, p in available.items() if draw(st.booleans())}
        elif slot.many:
            config[slot.name] = [{"use": name, **draw(_options(available[name].config_schema))}
                                 for name in draw(st.lists(st.sampled_from(sorted(available)), min_size=1, max_size=2))]
        else:
            name = draw(st.sampled_from(sorted(available)))
            config[slot.name] = {"use": name, **draw(_options(available[name].config_schema))}
    return config


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def to_toml(config: dict[str, Any]) -> str:
    """A tiny TOML writer for the shapes configs have (no third-party writer needed)."""
    lines = []
    for section, body in config.items():
        if isinstance(body, list):
            for entry in body:
                lines.append(f"[[{section}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items()]
        elif section == "builders":
            lines.append("[builders]")
            for flavor, options in body.items():
                lines.append(f"[builders.{flavor}]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in options.items()]
        else:
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


def _expected_config(schema: type, given: dict[str, Any]) -> dict[str, Any]:
    defaults = attrs.asdict(schema())
    return {**defaults, **{k: v for k, v in given.items() if k != "use"}}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_valid_configs_validate_and_round_trip(data, fake_pm_factory, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a drawn data_dir is relative to here, and must be creatable
    pm = fake_pm_factory()
    providers = _providers(pm)
    config = data.draw(valid_configs(providers))

    from_dict = _resolve(config, pm)
    cfg = tmp_path / "modelyard.toml"
    cfg.write_text(to_toml(config), encoding="utf-8")
    from_file = _resolve(cfg, pm)

    for resolved in (from_dict, from_file):
        for slot, body in config.items():
            if slot == "platform":
                assert attrs.asdict(resolved.platform) == _expected_config(type(resolved.platform), body)
            elif slot == "builders":
                chosen = {c.provider.name: c.config for c in resolved.slots["builders"]}
                for flavor, options in body.items():
                    assert attrs.asdict(chosen[flavor]) == _expected_config(type(chosen[flavor]), options)
            elif isinstance(body, list):
                assert [c.provider.name for c in resolved.slots[slot]] == [e["use"] for e in body]
                for choice, entry in zip(resolved.slots[slot], body, strict=True):
                    assert attrs.asdict(choice.config) == _expected_config(type(choice.config), entry)
            else:
                choice = resolved.one(slot)
                assert choice.provider.name == body["use"]
                assert attrs.asdict(choice.config) == _expected_config(type(choice.config), body)


#: Misspelt top-level sections: each is one "unknown section" error.
_BAD_SECTIONS = ("registy", "storag", "runtme", "schedular", "secret", "platfrom", "billings", "monitor")


def _inject(draw, config: dict[str, Any], site: str, providers: dict[str, dict[str, Any]], index: int) -> None:
    """Put exactly one error into ``site`` (a slot or "platform") of ``config``."""
    if site == "platform":
        body = config.setdefault("platform", {})
        kind = draw(st.sampled_from(["unknown_key", "bad_literal", "bad_type"]))
        if kind == "unknown_key":
            body["data_dri"] = "x"
        elif kind == "bad_literal":
            body["log_level"] = "loud"
        else:
            body["data_dir"] = 7
        return
    body = config.setdefault(site, {"use": SLOTS[site].default[0]})
    schema = providers[site][body["use"]].config_schema
    typed = {n: tp for n, tp in _fields(schema).items() if _strategy(tp) is not None}
    str_fields = [n for n, tp in typed.items() if tp is str or tp == (str | None)]
    kinds = ["bad_provider", "unknown_key"] + (["bad_type"] if typed else []) + (["missing_env"] if str_fields else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "bad_provider":
        body["use"] = f"nope{index}"
    elif kind == "unknown_key":
        body[f"zz_unknown_{index}"] = 1
    elif kind == "missing_env":
        body[draw(st.sampled_from(str_fields))] = f"${{env:MODELYARD_TEST_UNSET_{index}}}"
    else:
        name = draw(st.sampled_from(sorted(typed)))
        body[name] = {"x": {"y": 1}} if typed[name] is not dict else 42  # a nested table fits no scalar or list


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_k_injected_errors_give_exactly_k_issues(data, fake_pm_factory, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pm = fake_pm_factory()
    providers = _providers(pm)
    single = [s.name for s in SLOTS.values() if not s.many and providers.get(s.name)]
    config = data.draw(valid_configs(providers))
    for slot in single:  # start from a config where every single-provider slot is spelled out
        config.setdefault(slot, {"use": SLOTS[slot].default[0]})

    sites = data.draw(st.lists(st.sampled_from([*single, "platform"]), unique=True, max_size=len(single) + 1))
    bad_sections = data.draw(st.lists(st.sampled_from(_BAD_SECTIONS), unique=True, max_size=3))
    for i, site in enumerate(sites):
        if site != "platform":
            # keep only the slot's provider so that options valid for it stay valid
            config[site] = {"use": config[site]["use"]}
        _inject(data.draw, config, site, providers, i)
    for name in bad_sections:
        config[name] = {"use": "x"}
    k = len(sites) + len(bad_sections)

    if k == 0:
        _resolve(config, pm)
        return
    exc = _errors(config, pm)
    assert len(exc.issues) == k, exc.report()
    assert {i.section for i in exc.issues} == {*sites, *bad_sections}
    assert exc.report().splitlines()[0] == f"config: {k} error{'s' if k != 1 else ''}"


# --------------------------------------------------------------------------------------------- plugin sections
@attrs.frozen(kw_only=True)
class GreeterConfig:
    """The ``[greeter]`` section a test plugin declares."""

    greeting: str = "hello"
    times: int = 1


class Greeter:
    """Declares ``[greeter]`` through ``modelyard_config_sections``."""

    @hookimpl
    def modelyard_config_sections(self):
        """Declare ``[greeter]``."""
        yield ConfigSection(name="greeter", schema=GreeterConfig, description="test section")


def test_plugin_config_sections_are_validated_like_slots(fake_pm_factory, tmp_path):
    pm = fake_pm_factory(("greeter", Greeter()))
    resolved = _resolve({"greeter": {"greeting": "${env:GREETING:-hi}", "times": 3}}, pm)
    assert resolved.sections["greeter"] == GreeterConfig(greeting="hi", times=3)
    assert _resolve({}, pm).sections["greeter"] == GreeterConfig()  # omitted: the defaults

    cfg = tmp_path / "c.toml"
    cfg.write_text('[greeter]\ngreting = "yo"\ntimes = "3"\n')
    exc = _errors(cfg, pm)
    assert [(i.line, i.section, i.key) for i in exc.issues] == [(2, "greeter", "greting"), (3, "greeter", "times")]
    assert "did you mean 'greeting'?" in exc.issues[0].message
    assert exc.issues[1].message == "expected an integer, got the string '3'"

    # without the plugin the section is unknown
    (issue,) = _errors({"greeter": {}}, fake_pm_factory()).issues
    assert issue.section == "greeter" and issue.message.startswith("unknown section")
