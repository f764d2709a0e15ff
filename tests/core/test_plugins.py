"""The plugin manager: a fresh one per test (STYLE 4, 17), conflicts named by distribution (STYLE 9), disabling by
name (STYLE 3), broken third-party plugins as warnings unless used (STYLE 10), hook tracing (STYLE 16), renamed
provider hooks that still work for one release, and job kinds collected by name."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
import structlog
import typer
from modelyard import hookimpl
from modelyard.cli import build_app
from modelyard.errors import ConfigError, PluginError
from modelyard.jobs import JobKind
from modelyard.platform import resolve_config
from modelyard.plugins import (
    ESSENTIAL,
    PluginLoadWarning,
    collect_job_kinds,
    collect_providers,
    disabled_from_env,
    get_plugin_manager,
)
from modelyard.providers import SLOTS, Provider, RuntimeProvider, Slot, StorageProvider
from pluggy import PluginValidationError
from typer.testing import CliRunner

TURBO = """
from modelyard import hookimpl
from modelyard.providers import RuntimeProvider


@hookimpl
def modelyard_runtimes():
    yield RuntimeProvider(name="{name}", factory=lambda config, ctx: None, description="{description}")
"""

BROKEN = """
raise ImportError("libacme.so: cannot open shared object file")
"""


class TurboRuntime:
    """A test plugin offering one runtime."""

    def __init__(self, name: str = "turbo") -> None:
        self.name = name

    @hookimpl
    def modelyard_runtimes(self):
        """Offer the runtime."""
        yield RuntimeProvider(name=self.name, factory=lambda config, ctx: None)


def test_each_call_builds_a_fresh_manager():
    a = get_plugin_manager(load_entrypoints=False, plugins=[("turbo", TurboRuntime())])
    b = get_plugin_manager(load_entrypoints=False)
    assert a is not b
    assert a.has_plugin("turbo") and not b.has_plugin("turbo")
    assert "turbo" in collect_providers(a)["runtime"]
    assert collect_providers(b)["runtime"] == {}


def test_conflicting_providers_name_both_plugins_and_distributions(fake_site):
    fake_site.add("acme-modelyard", "1.2.0", entry="acme", module="acme_turbo",
                  source=TURBO.format(name="turbo", description="acme's"))
    fake_site.add("turbo-modelyard", "0.3.0", entry="turbo", module="turbo_turbo",
                  source=TURBO.format(name="turbo", description="turbo's"))
    fake_site.isolate()
    pm = get_plugin_manager()
    with pytest.raises(PluginError) as info:
        collect_providers(pm)
    message = str(info.value)
    assert "Conflicting plugins found: runtime provider 'turbo'" in message
    for part in ("'acme'", "acme-modelyard", "'turbo'", "turbo-modelyard", "disable"):
        assert part in message


def test_conflict_between_plugins_without_distribution():
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("one", TurboRuntime()), ("two", TurboRuntime())])
    with pytest.raises(PluginError, match=r"plugin 'one' \(not from a distribution\) and plugin 'two'"):
        collect_providers(pm)


def test_wrong_record_type_is_a_plugin_error():
    class Confused:
        @hookimpl
        def modelyard_runtimes(self):
            yield StorageProvider(name="oops", factory=lambda config, ctx: None)

    pm = get_plugin_manager(load_entrypoints=False, plugins=[("confused", Confused())])
    with pytest.raises(PluginError) as info:
        collect_providers(pm)
    assert str(info.value) == ("plugin 'confused': modelyard_runtimes must yield RuntimeProvider records, "
                               "got StorageProvider")


def test_failing_provider_hook_names_the_plugin():
    class Failing:
        @hookimpl
        def modelyard_artifact_stores(self):
            raise RuntimeError("boom")

    pm = get_plugin_manager(load_entrypoints=False, plugins=[("failing", Failing())])
    with pytest.raises(PluginError, match="plugin 'failing' failed in modelyard_artifact_stores: RuntimeError: boom"):
        collect_providers(pm)


def test_provider_names_are_validated():
    with pytest.raises(ValueError, match="provider name"):
        RuntimeProvider(name="Not A Name", factory=lambda config, ctx: None)


# --------------------------------------------------------------------------------------------- renamed hooks
#: The provider hooks renamed to follow the naming rule (STYLE 6), old → new; the old names work for one release.
RENAMED = {
    "modelyard_registries": "modelyard_registry_backends",
    "modelyard_storages": "modelyard_artifact_stores",
    "modelyard_auth_providers": "modelyard_authenticators",
    "modelyard_billing_providers": "modelyard_meters",
}


def test_the_slots_declare_the_renames():
    assert {old: s.hook for s in SLOTS.values() for old in s.deprecated_hooks} == RENAMED


def _offering(hook: str, provider: Provider) -> object:
    """A test plugin implementing ``hook`` with one provider."""
    plugin = type("Offers", (), {hook: hookimpl(lambda self: [provider])})
    return plugin()


def _record(slot: Slot, name: str) -> Provider:
    return slot.record(name=name, factory=lambda config, ctx: None)


@pytest.mark.parametrize(("old", "new"), sorted(RENAMED.items()))
def test_an_old_provider_hook_still_works_and_warns(old, new):
    slot = next(s for s in SLOTS.values() if s.hook == new)
    with pytest.warns(DeprecationWarning, match=rf"the hook {old} is deprecated .* implement {new} instead") as caught:
        pm = get_plugin_manager(load_entrypoints=False, plugins=[("legacy", _offering(old, _record(slot, "legacy")))])
    assert caught[0].filename == __file__  # pluggy points at the implementation, not at modelyard
    entry = collect_providers(pm)[slot.name]["legacy"]
    assert (entry.plugin, entry.provider.slot) == ("legacy", slot.name)


@pytest.mark.parametrize(("old", "new"), sorted(RENAMED.items()))
def test_a_new_provider_hook_does_not_warn_and_clashes_with_the_old(old, new):
    slot = next(s for s in SLOTS.values() if s.hook == new)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = get_plugin_manager(load_entrypoints=False, plugins=[("current", _offering(new, _record(slot, "x")))])
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert list(collect_providers(pm)[slot.name]) == ["x"]

    with pytest.warns(DeprecationWarning):
        pm.register(_offering(old, _record(slot, "x")), name="legacy")
    with pytest.raises(PluginError, match=rf"{slot.name} provider 'x' is offered by plugin 'current' .* and plugin "
                                          r"'legacy'"):
        collect_providers(pm)


def test_first_party_plugins_implement_no_deprecated_hook():
    pm = get_plugin_manager()  # discovery: the built-in plugins, through their entry points
    builtin = [(name, plugin) for name, plugin in pm.list_name_plugin()
               if pm.distributions.get(name, (None,))[0] == "modelyard"]
    assert {"sql", "fsspec", "basics", "local"} <= {name for name, _ in builtin}
    deprecated = {(name, caller.name) for name, plugin in builtin for caller in pm.get_hookcallers(plugin) or ()
                  if caller.spec is not None and caller.spec.opts.get("warn_on_impl") is not None}
    assert deprecated == set()


# --------------------------------------------------------------------------------------------- job kinds
def _kinds(*names: str) -> object:
    class Kinds:
        @hookimpl
        def modelyard_job_kinds(self):
            return [JobKind(name=n, run=lambda params, ctx: None) for n in names]

    return Kinds()


def test_job_kinds_are_collected_by_name_with_their_plugin():
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("b", _kinds("zeta")), ("a", _kinds("alpha", "acme.x"))])
    kinds = collect_job_kinds(pm)
    assert list(kinds) == ["acme.x", "alpha", "zeta"]
    assert (kinds["zeta"].plugin, kinds["alpha"].plugin, kinds["zeta"].distribution) == ("b", "a", None)


def test_two_plugins_offering_one_job_kind_are_named():
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("one", _kinds("train")), ("two", _kinds("train"))])
    with pytest.raises(PluginError, match=r"Conflicting plugins found: job kind 'train' is offered by plugin 'one' "
                                          r"\(not from a distribution\) and plugin 'two'"):
        collect_job_kinds(pm)


def test_a_job_kind_hook_yielding_something_else_is_named():
    class Confused:
        @hookimpl
        def modelyard_job_kinds(self):
            yield RuntimeProvider(name="oops", factory=lambda config, ctx: None)

    pm = get_plugin_manager(load_entrypoints=False, plugins=[("confused", Confused())])
    with pytest.raises(PluginError, match="plugin 'confused': modelyard_job_kinds must yield JobKind records, "
                                          "got RuntimeProvider"):
        collect_job_kinds(pm)


def test_unknown_hook_is_rejected_at_assembly():
    class Typo:
        @hookimpl
        def modelyard_runtimez(self):
            return []

    with pytest.raises(PluginValidationError, match="modelyard_runtimez"):
        get_plugin_manager(load_entrypoints=False, plugins=[("typo", Typo())])


# --------------------------------------------------------------------------------------------- disabling
def test_disable_by_name_blocks_the_plugin():
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("turbo", TurboRuntime())], disable=["turbo"])
    assert not pm.has_plugin("turbo")
    assert pm.is_blocked("turbo") and "turbo" in pm.disabled
    assert collect_providers(pm)["runtime"] == {}


def test_disable_through_the_environment(monkeypatch, fake_site):
    fake_site.add("acme-modelyard", "1.2.0", entry="acme", module="acme_turbo",
                  source=TURBO.format(name="turbo", description="acme's"))
    fake_site.isolate()
    monkeypatch.setenv("MODELYARD_DISABLE_PLUGINS", " acme , other,")
    assert disabled_from_env() == {"acme", "other"}
    pm = get_plugin_manager()
    assert not pm.has_plugin("acme")
    assert "turbo" not in collect_providers(pm)["runtime"]
    monkeypatch.delenv("MODELYARD_DISABLE_PLUGINS")
    assert "turbo" in collect_providers(get_plugin_manager())["runtime"]


def test_disable_through_the_config(fake_site, tmp_path, core_fakes):
    fake_site.add("acme-modelyard", "1.2.0", entry="acme", module="acme_turbo",
                  source=TURBO.format(name="turbo", description="acme's"))
    fake_site.add("fakes-modelyard", "0.0.1", entry="fakes", module="core_fakes_plugin", plugin=core_fakes())
    fake_site.isolate()
    cfg = tmp_path / "modelyard.toml"

    cfg.write_text('[runtime]\nuse = "turbo"\n')
    resolved, pm, _ = resolve_config(cfg, environ={})  # the core builds the plugin manager from the config
    assert resolved.one("runtime").provider.name == "turbo"
    assert pm.has_plugin("acme")

    cfg.write_text('[platform]\ndisable = ["acme"]\n\n[runtime]\nuse = "turbo"\n')
    with pytest.raises(ConfigError) as info:
        resolve_config(cfg, environ={})
    (issue,) = info.value.issues
    assert (issue.line, issue.section, issue.key) == (5, "runtime", "use")
    assert "'turbo' is not an installed runtime" in issue.message


@pytest.mark.parametrize("name", sorted(ESSENTIAL))
def test_essential_plugins_cannot_be_disabled(name, monkeypatch, tmp_path):
    with pytest.raises(PluginError, match=f"cannot disable essential plugin.*{name}"):
        get_plugin_manager(load_entrypoints=False, disable=[name])
    monkeypatch.setenv("MODELYARD_DISABLE_PLUGINS", name)
    with pytest.raises(PluginError, match="essential"):
        get_plugin_manager(load_entrypoints=False)
    monkeypatch.delenv("MODELYARD_DISABLE_PLUGINS")

    cfg = tmp_path / "modelyard.toml"
    cfg.write_text(f'[platform]\ndisable = ["{name}"]\n')
    from modelyard.cli.app import main

    with pytest.raises(SystemExit) as info:
        main(["-c", str(cfg), "plugins"])
    assert info.value.code == 2


# --------------------------------------------------------------------------------------------- broken plugins
def test_broken_third_party_plugin_is_a_warning_unless_used(fake_site, core_fakes):
    fake_site.add("acme-modelyard", "1.2.0", entry="acme", module="acme_broken", source=BROKEN)
    fake_site.isolate()

    with pytest.warns(PluginLoadWarning, match=r"Error loading plugin 'acme' from acme-modelyard: ImportError"):
        pm = get_plugin_manager(plugins=[("fakes", core_fakes())])
    assert "libacme.so" in pm.broken["acme"]
    resolved, _, _ = resolve_config({}, plugin_manager=pm, environ={})  # not used: the config is fine
    assert resolved.one("runtime").provider.name == "local"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)
        pm = get_plugin_manager(plugins=[("fakes", core_fakes())])
    with pytest.raises(ConfigError) as info:
        resolve_config({"runtime": {"use": "acme"}}, plugin_manager=pm, environ={})
    (issue,) = info.value.issues
    assert "'acme' is not an installed runtime" in issue.message
    assert "plugins that failed to load: acme (ImportError: libacme.so: cannot open shared object file)" \
        in issue.message


def test_broken_builtin_plugin_is_an_error(fake_site):
    fake_site.add("modelyard", "0.1.0", entry="sql", module="broken_builtin", source=BROKEN)
    fake_site.isolate()
    with pytest.raises(PluginError, match="Error loading built-in plugin 'sql': ImportError"):
        get_plugin_manager()


# --------------------------------------------------------------------------------------------- tracing
@pytest.fixture
def debug_logs():
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with structlog.testing.capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(**saved)


def test_trace_plugins_env_traces_hook_calls_to_the_debug_log(monkeypatch, debug_logs):
    monkeypatch.setenv("MODELYARD_TRACE_PLUGINS", "1")
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("turbo", TurboRuntime())])
    list(pm.hook.modelyard_runtimes())
    traces = [e for e in debug_logs if e["event"] == "plugin-trace"]
    assert traces and all(e["log_level"] == "debug" for e in traces)
    assert any("modelyard_runtimes" in e["message"] for e in traces)


def test_no_trace_by_default(debug_logs):
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("turbo", TurboRuntime())])
    list(pm.hook.modelyard_runtimes())
    assert not [e for e in debug_logs if e["event"] == "plugin-trace"]


# --------------------------------------------------------------------------------------------- listing
def test_plugin_infos_and_the_plugins_command(fake_site, fake_pm_factory):
    fake_site.add("acme-modelyard", "1.2.0", entry="acme", module="acme_turbo",
                  source=TURBO.format(name="turbo", description="acme's turbo runtime"))
    fake_site.isolate()
    pm = get_plugin_manager()
    (info,) = pm.plugin_infos()
    assert (info.name, info.distribution, info.version, info.hooks, info.builtin) == (
        "acme", "acme-modelyard", "1.2.0", ("modelyard_runtimes",), False)

    result = CliRunner().invoke(build_app(plugin_manager_factory=fake_pm_factory), ["plugins", "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    runtimes = {p["name"]: p for p in doc["slots"]["runtime"]}
    assert runtimes["local"]["install_hint"] is None
    assert runtimes["ray"]["install_hint"] == "pip install 'modelyard[ray]'"
    assert runtimes["ray"]["plugin"] == "fakes"
    assert [p["name"] for p in doc["plugins"]] == ["fakes"]
    assert "modelyard_runtimes" in doc["plugins"][0]["hooks"]

    human = CliRunner().invoke(build_app(plugin_manager_factory=fake_pm_factory), ["plugins"])
    assert human.exit_code == 0
    assert "pip install 'modelyard[ray]'" in human.stdout
    assert "fake registry" in human.stdout


def test_plugins_can_add_cli_commands():
    class Hello:
        @hookimpl
        def modelyard_cli_commands(self, cli):
            @cli.command("hello")
            def hello(ctx: typer.Context, name: str = "world") -> None:
                from modelyard.cli import get_state

                typer.echo(f"hello {name} (config: {get_state(ctx).config})")

    pm = get_plugin_manager(load_entrypoints=False, plugins=[("hello", Hello())])
    result = CliRunner().invoke(build_app(pm), ["-c", "x.toml", "hello", "--name", "yard"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello yard (config: x.toml)\n"
    assert "hello" not in CliRunner().invoke(build_app(), ["--help"]).stdout
