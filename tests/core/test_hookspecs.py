"""Meta-tests that keep the hook contract honest (STYLE 18): documented, callable with no implementations,
exercised by a test, pluggy options that follow STYLE 6 and 8, provider hooks named by one rule, and the
generated hook reference up to date.

The option and naming checks are functions run twice: against the real hookspecs (no problems) and against
deliberately bad specs (every problem found), so that they are known to be able to fail.
"""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import types
import typing
from collections.abc import Iterable
from pathlib import Path

import attrs
import pluggy
import pytest
from modelyard.hookspecs import SPEC_MODULES, hookspec
from modelyard.plugins import get_plugin_manager
from modelyard.providers import SLOTS, Slot

ROOT = Path(__file__).resolve().parents[2]


def _specs():
    for module in SPEC_MODULES:
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("modelyard_") and hasattr(fn, "modelyard_spec"):
                yield name, fn


SPECS = dict(_specs())


def test_there_is_a_hookspec_for_every_slot_and_concern():
    expected = {"modelyard_registry_backends", "modelyard_artifact_stores", "modelyard_secret_stores",
                "modelyard_builders", "modelyard_schedulers", "modelyard_runtimes", "modelyard_monitors",
                "modelyard_authenticators", "modelyard_meters", "modelyard_job_kinds", "modelyard_after_startup",
                "modelyard_before_shutdown", "modelyard_http_routes", "modelyard_cli_commands",
                "modelyard_config_sections", "modelyard_on_prediction", "modelyard_authorize"}
    assert expected <= set(SPECS)
    for slot in SLOTS.values():
        assert set(slot.hooks) <= set(SPECS), slot.name


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hookspec_docstring_is_a_contract(name):
    doc = inspect.getdoc(SPECS[name]) or ""
    summary = doc.splitlines()[0] if doc else ""
    assert summary.endswith("."), f"{name}: one-line summary ending with a period"
    assert "Called" in doc, f"{name}: must say when it is called"
    assert "Returns:" in doc, f"{name}: must document what it returns"
    assert "Example:" in doc, f"{name}: must have an Example"
    assert any(s in doc for s in ("All results are collected", "Stops at first non-None result",
                                  "all implementations are called")), f"{name}: must say how results combine"
    if "Args:" not in doc:
        assert not inspect.signature(SPECS[name]).parameters, f"{name}: arguments must be documented"
    for param in inspect.signature(SPECS[name]).parameters:
        assert f"{param}:" in doc, f"{name}: argument {param!r} undocumented"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hookspec_callable_with_no_implementations(name):
    pm = get_plugin_manager(load_entrypoints=False)
    kwargs = {p: None for p in inspect.signature(SPECS[name]).parameters}
    assert getattr(pm.hook, name)(**kwargs) == []


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hookspec_is_exercised_by_a_test(name):
    """Each hook must be named in some test other than this file (datasette's test_plugin_hooks_have_tests)."""
    here = Path(__file__).resolve()
    for path in (ROOT / "tests").rglob("*.py"):
        if path.resolve() != here and name in path.read_text(encoding="utf-8", errors="ignore"):
            return
    pytest.fail(f"no test mentions {name}")


# --------------------------------------------------------------------------------------------- pluggy options
#: Configure-style hooks, the only ones that may be historic (a late-registered plugin still gets the call).
CONFIGURE = re.compile(r"^modelyard_(add_)?configure(_\w+)?$")
#: Event hooks: every implementation is called; a first result must never cut the others off.
EVENT = re.compile(r"^modelyard_(before|after|on)_\w+$")
#: Decision hooks: any deny wins, so every implementation must be asked.
DECISION = frozenset({"modelyard_authorize"})
#: Hooks whose implementations offer records, one call per implementation at assembly.
PROVIDER_HOOKS = frozenset({h for s in SLOTS.values() for h in s.hooks} | {"modelyard_job_kinds",
                                                                          "modelyard_actions"})
FIRST_RESULT = "Stops at first non-None result"


def hookspec_problems(pm: pluggy.PluginManager) -> list[str]:
    """Every breach of STYLE 6 and 8 in the pluggy options of ``pm``'s hookspecs (``pm.hook.<name>.spec.opts``).

    - ``historic`` only on configure-style hooks, and never together with ``firstresult``;
    - ``firstresult`` exactly when the docstring says "Stops at first non-None result", and never on provider,
      event or decision hooks (they must hear from every implementation);
    - provider hooks take no arguments and are plural nouns;
    - arguments are plain names without defaults (hooks are called with keyword arguments only; pluggy never
      passes an argument that has a default);
    - ``warn_on_impl`` is a DeprecationWarning naming the hook that replaces it, which exists, is not deprecated
      itself and takes the same arguments.
    """
    problems: list[str] = []
    callers = {name: c for name, c in vars(pm.hook).items() if isinstance(c, pluggy.HookCaller)}
    for name, caller in sorted(callers.items()):
        spec = caller.spec
        if spec is None:
            continue
        opts = spec.opts
        doc = inspect.getdoc(spec.function) or ""
        if not name.startswith("modelyard_"):
            problems.append(f"{name}: every hook is named modelyard_…")
        if opts.get("historic") and opts.get("firstresult"):
            problems.append(f"{name}: firstresult together with historic")
        if opts.get("historic") and not CONFIGURE.match(name):
            problems.append(f"{name}: historic on a hook that is not configure-style")
        if opts.get("firstresult") and FIRST_RESULT not in doc:
            problems.append(f"{name}: firstresult, but the docstring does not say {FIRST_RESULT!r}")
        if not opts.get("firstresult") and FIRST_RESULT in doc:
            problems.append(f"{name}: the docstring says {FIRST_RESULT!r}, but the spec is not firstresult")
        if opts.get("firstresult") and (name in PROVIDER_HOOKS or EVENT.match(name) or name in DECISION):
            problems.append(f"{name}: firstresult on a hook whose every implementation must be called")
        if name in PROVIDER_HOOKS:
            if spec.argnames or spec.kwargnames:
                problems.append(f"{name}: a provider hook takes no arguments")
            if not name.endswith("s"):
                problems.append(f"{name}: a provider hook is a plural noun")
        params = inspect.signature(spec.function).parameters.values()
        if spec.kwargnames or any(p.kind is not p.POSITIONAL_OR_KEYWORD for p in params if p.name != "self"):
            problems.append(f"{name}: arguments must be plain names without defaults")
        warning = opts.get("warn_on_impl")
        if warning is not None:
            if not isinstance(warning, DeprecationWarning):
                problems.append(f"{name}: warn_on_impl must be a DeprecationWarning, got {type(warning).__name__}")
            successor = next((w for w in re.findall(r"\bmodelyard_\w+", str(warning)) if w != name), None)
            new = callers.get(successor) if successor else None
            if new is None or new.spec is None:
                problems.append(f"{name}: deprecated without naming an existing hook to implement instead")
            elif new.spec.opts.get("warn_on_impl") is not None:
                problems.append(f"{name}: its replacement {successor} is deprecated too")
            elif (new.spec.argnames, new.spec.kwargnames) != (spec.argnames, spec.kwargnames):
                problems.append(f"{name}: its replacement {successor} takes other arguments")
    return problems


def _bad_spec_module() -> types.ModuleType:
    """A spec module breaking every rule :func:`hookspec_problems` knows, one hook per rule."""
    bad = types.ModuleType("bad_specs")

    def spec(name: str, doc: str = "Do something.\n\nAll results are collected.", **opts: typing.Any):
        def fn():
            pass

        fn.__name__ = fn.__qualname__ = name
        fn.__doc__ = doc
        setattr(bad, name, hookspec(**opts)(fn))

    spec("modelyard_configure_both", historic=True, doc=f"Configure.\n\n{FIRST_RESULT}.")
    # pluggy's marker refuses historic=True with firstresult=True, but nothing stops a spec module from carrying
    # the options some other way (a hand-made marker, an older pluggy), and add_hookspecs does not look again.
    bad.modelyard_configure_both.modelyard_spec["firstresult"] = True  # type: ignore[attr-defined]
    spec("modelyard_load_everything", historic=True)
    spec("modelyard_after_thing_happened", firstresult=True, doc=f"An event.\n\n{FIRST_RESULT}.")
    spec("modelyard_pick_quietly", firstresult=True)
    spec("modelyard_pick_loudly", doc=f"Pick one.\n\n{FIRST_RESULT}.")
    spec("modelyard_old_warning", warn_on_impl=UserWarning("implement modelyard_pick_loudly instead"))
    spec("modelyard_orphan", warn_on_impl=DeprecationWarning("this hook is going away"))
    spec("modelyard_chain", warn_on_impl=DeprecationWarning("implement modelyard_orphan instead"))
    spec("modelyard_different", warn_on_impl=DeprecationWarning("implement modelyard_with_default instead"))
    spec("acme_hook")

    def modelyard_with_default(thing=None):
        """Takes a defaulted argument, which pluggy would never pass.

        All results are collected.
        """

    bad.modelyard_with_default = hookspec(modelyard_with_default)  # type: ignore[attr-defined]
    return bad


EXPECTED_PROBLEMS = (
    "modelyard_configure_both: firstresult together with historic",
    "modelyard_load_everything: historic on a hook that is not configure-style",
    "modelyard_after_thing_happened: firstresult on a hook whose every implementation must be called",
    "modelyard_pick_quietly: firstresult, but the docstring does not say",
    "modelyard_pick_loudly: the docstring says",
    "modelyard_old_warning: warn_on_impl must be a DeprecationWarning, got UserWarning",
    "modelyard_orphan: deprecated without naming an existing hook to implement instead",
    "modelyard_chain: its replacement modelyard_orphan is deprecated too",
    "modelyard_different: its replacement modelyard_with_default takes other arguments",
    "modelyard_with_default: arguments must be plain names without defaults",
    "acme_hook: every hook is named modelyard_…",
)


def test_hookspec_options_follow_the_rules():
    """Replaces the old ``test_no_firstresult_together_with_historic``, which could not fail: it read the
    markers' options off the module functions, and no spec had either option."""
    pm = get_plugin_manager(load_entrypoints=False)
    assert set(SPECS) <= set(vars(pm.hook))  # the check below sees every hookspec
    assert hookspec_problems(pm) == []


def test_the_options_check_finds_every_kind_of_bad_spec():
    pm = get_plugin_manager(load_entrypoints=False)
    pm.add_hookspecs(_bad_spec_module())
    problems = hookspec_problems(pm)
    for expected in EXPECTED_PROBLEMS:
        assert any(p.startswith(expected) for p in problems), f"not reported: {expected}\n{problems}"
    bad_hooks = {p.split(":")[0] for p in EXPECTED_PROBLEMS}
    assert {p.split(":")[0] for p in problems} == bad_hooks  # and nothing about the real hookspecs


def test_the_options_check_reads_what_pluggy_registered():
    """A provider hook that a plugin manager got as firstresult is reported, though the module is fine."""
    pm = pluggy.PluginManager("modelyard")

    class Specs:
        @hookspec(firstresult=True)
        def modelyard_runtimes(self):
            """Offer runtimes.

            Stops at first non-None result.
            """

    pm.add_hookspecs(Specs)
    assert hookspec_problems(pm) == ["modelyard_runtimes: firstresult on a hook whose every implementation must "
                                     "be called"]


# --------------------------------------------------------------------------------------------- naming rule
def _plural(noun: str) -> str:
    return noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def provider_hook_problems(slots: Iterable[Slot], pm: pluggy.PluginManager) -> list[str]:
    """Breaches of the provider-hook naming rule (STYLE 6, ``modelyard.providers``): a slot's hook is
    ``modelyard_`` plus the plural, in snake case, of the Protocol its providers' factories return (a slot
    without one, monitors, is named for its role); each deprecated former name is a hookspec that warns and
    points at the current one."""
    problems = []
    for slot in slots:
        if slot.protocol is None:
            expected = f"modelyard_{slot.name}" if slot.many else f"modelyard_{_plural(slot.name)}"
        else:
            module, _, attr = slot.protocol.partition(":")
            protocol = getattr(importlib.import_module(module), attr, None)
            if protocol is None or not getattr(protocol, "_is_protocol", False):
                problems.append(f"{slot.name}: {slot.protocol} is not a Protocol")
                continue
            expected = f"modelyard_{_plural(_snake(attr))}"
        if slot.hook != expected:
            problems.append(f"{slot.name}: the provider hook is {slot.hook}; by the rule it is {expected}")
        for old in slot.deprecated_hooks:
            caller = getattr(pm.hook, old, None)
            warning = caller.spec.opts.get("warn_on_impl") if caller is not None and caller.spec else None
            if not isinstance(warning, DeprecationWarning) or slot.hook not in str(warning):
                problems.append(f"{slot.name}: {old} must be a hookspec whose warn_on_impl names {slot.hook}")
    return problems


def test_provider_hooks_are_named_by_one_rule():
    pm = get_plugin_manager(load_entrypoints=False)
    assert provider_hook_problems(SLOTS.values(), pm) == []
    assert {s.name: s.hook for s in SLOTS.values()} == {
        "secrets": "modelyard_secret_stores", "registry": "modelyard_registry_backends",
        "storage": "modelyard_artifact_stores", "builders": "modelyard_builders",
        "scheduler": "modelyard_schedulers", "runtime": "modelyard_runtimes", "monitors": "modelyard_monitors",
        "auth": "modelyard_authenticators", "billing": "modelyard_meters"}


def test_the_naming_check_finds_names_off_the_rule():
    pm = get_plugin_manager(load_entrypoints=False)
    bad = [attrs.evolve(SLOTS["auth"], hook="modelyard_auth_providers", deprecated_hooks=()),
           attrs.evolve(SLOTS["storage"], deprecated_hooks=("modelyard_runtimes",)),
           attrs.evolve(SLOTS["runtime"], protocol="modelyard.hookspecs.runtime:BundleSource")]
    assert provider_hook_problems(bad, pm) == [
        "auth: the provider hook is modelyard_auth_providers; by the rule it is modelyard_authenticators",
        "storage: modelyard_runtimes must be a hookspec whose warn_on_impl names modelyard_artifact_stores",
        "runtime: modelyard.hookspecs.runtime:BundleSource is not a Protocol",
    ]


def test_hook_reference_is_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_hook_reference.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
