"""Meta-tests that keep the hook contract honest (STYLE 18): documented, callable with no implementations,
exercised by a test, and the generated hook reference up to date."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from modelyard.hookspecs import SPEC_MODULES
from modelyard.plugins import get_plugin_manager

ROOT = Path(__file__).resolve().parents[2]


def _specs():
    for module in SPEC_MODULES:
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("modelyard_") and hasattr(fn, "modelyard_spec"):
                yield name, fn


SPECS = dict(_specs())


def test_there_is_a_hookspec_for_every_slot_and_concern():
    expected = {"modelyard_registries", "modelyard_storages", "modelyard_secret_stores", "modelyard_builders",
                "modelyard_schedulers", "modelyard_runtimes", "modelyard_monitors", "modelyard_auth_providers",
                "modelyard_billing_providers", "modelyard_after_startup", "modelyard_before_shutdown",
                "modelyard_http_routes", "modelyard_cli_commands", "modelyard_config_sections",
                "modelyard_on_prediction", "modelyard_authorize"}
    assert expected <= set(SPECS)


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


def test_no_firstresult_together_with_historic():
    for name, fn in SPECS.items():
        opts = fn.modelyard_spec
        assert not (opts.get("historic") and opts.get("firstresult")), name


def test_hook_reference_is_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_hook_reference.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
