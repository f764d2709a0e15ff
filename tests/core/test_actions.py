"""The action catalogue (DESIGN "one decision point"): one record per action, a lookup that refuses unknown names,
plugins adding actions through ``modelyard_actions`` (a clash names both plugins), every action named in code
being in the catalogue, and docs/actions.md generated from it."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs
import pytest
from modelyard import hookimpl
from modelyard.actions import CORE, CORE_ACTIONS, Action, ActionEntry, Catalogue, UnknownAction
from modelyard.errors import PluginError
from modelyard.plugins import collect_actions, get_plugin_manager

ROOT = Path(__file__).resolve().parents[2]


class Reports:
    """A plugin with an action of its own."""

    @hookimpl
    def modelyard_actions(self) -> Iterator[Action]:
        yield Action(name="acme.reports:read", resources=("reports", "reports/{name}"), role="reader",
                     description="Read usage reports.")


class Clash:
    """A plugin offering an action another offers too."""

    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl
    def modelyard_actions(self) -> Iterator[Action]:
        yield Action(name=self.name, resources="x", description="Clashes.")


def test_an_action_record_is_validated() -> None:
    action = Action(name="models:tag", resources=("models/{name}", "models/{name}/versions/{version}"),
                    mutates=True, description="Tag.")
    assert action.audited and action.role == "reader"  # audited defaults to mutates
    assert not Action(name="predict", resources="deployments/{name}", description="Predict.").audited
    assert Action(name="audit:read", resources="audit", audited=True, description="Read.").audited
    for bad in ("Models:read", "models:", "models read", ":read", "a" * 101, ""):
        with pytest.raises(ValueError, match="action name"):
            Action(name=bad, resources="x", description="Bad.")
    for bad_resources in ((), ("models/{name",), ("Models",), ("models//x",)):
        with pytest.raises(ValueError):
            Action(name="x:y", resources=bad_resources, description="Bad.")
    with pytest.raises(ValueError):
        Action(name="x:y", resources="x", role="root", description="Bad.")  # type: ignore[arg-type]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        action.name = "other"  # type: ignore[misc]


def test_resources_match_by_shape() -> None:
    action = Action(name="models:tag", resources=("models/{name}", "models/{name}/versions/{version}"),
                    description="Tag.")
    assert action.matches("models/churn") and action.matches("models/churn/versions/3")
    assert action.matches("models/{name}")  # a route's template has the shape too
    for other in ("models", "models/", "deployments/churn", "models/churn/aliases/x", "models/churn/versions/"):
        assert not action.matches(other), other


def test_the_core_catalogue_names_every_verb_once() -> None:
    catalogue = Catalogue.core()
    names = [a.name for a in CORE_ACTIONS]
    assert len(names) == len(set(names)) == len(catalogue)
    assert {"models:read", "models:register", "models:alias", "models:unalias", "models:tag", "models:create",
            "deployments:read", "deployments:create", "deployments:delete", "predict"} == set(names)
    assert all(catalogue.entries[n].plugin == CORE for n in names)
    # Every mutating action is audited (DESIGN, security defaults); predict is metered, not audited.
    assert all(a.audited for a in catalogue if a.mutates) and not catalogue.get("predict").audited


def test_an_unknown_name_raises_with_a_did_you_mean() -> None:
    catalogue = Catalogue.core()
    with pytest.raises(UnknownAction, match="'deployments:deploy' is not in the catalogue; did you mean "
                                            "'deployments:delete'"):
        catalogue.get("deployments:deploy")
    with pytest.raises(LookupError):
        catalogue.get("nothing-like-it")
    assert "deployments:deploy" not in catalogue and "predict" in catalogue


def test_plugins_add_actions() -> None:
    catalogue = collect_actions(get_plugin_manager(load_entrypoints=False, plugins=[("reports", Reports())]))
    assert catalogue.get("acme.reports:read").matches("reports/q1")
    entry = catalogue.entries["acme.reports:read"]
    assert (entry.plugin, entry.distribution) == ("reports", None)
    assert set(Catalogue.core().entries) < set(catalogue.entries)


def test_the_server_plugin_adds_the_actions_of_its_own_routes() -> None:
    catalogue = collect_actions(get_plugin_manager())
    assert {n: catalogue.entries[n].plugin for n in ("plugins:read", "audit:read", "server:read")} == {
        "plugins:read": "server", "audit:read": "server", "server:read": "server"}


@pytest.mark.parametrize("name, other", [("acme.reports:read", "plugin 'reports'"),
                                         ("models:read", "modelyard (core)")])
def test_a_clash_names_both_plugins(name: str, other: str) -> None:
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("reports", Reports()), ("clash", Clash(name))])
    with pytest.raises(PluginError) as err:
        collect_actions(pm)
    message = str(err.value)
    assert f"action {name!r}" in message and other in message and "plugin 'clash'" in message


def test_a_record_of_the_wrong_type_names_its_plugin() -> None:
    class Wrong:
        @hookimpl
        def modelyard_actions(self) -> Iterable[str]:
            return ["models:read"]

    with pytest.raises(PluginError, match="plugin 'wrong': modelyard_actions must yield Action records"):
        collect_actions(get_plugin_manager(load_entrypoints=False, plugins=[("wrong", Wrong())]))


def test_a_catalogue_refuses_two_entries_of_one_name() -> None:
    action = Action(name="x:y", resources="x", description="X.")
    with pytest.raises(PluginError, match=r"'x:y' is offered by plugin 'a' .* and by plugin 'b'"):
        Catalogue.of([ActionEntry(action=action, plugin="a", distribution=None),
                      ActionEntry(action=action, plugin="b", distribution=None)])


# --------------------------------------------------------------------------------------------- names in code
#: Calls whose argument at this position is an action name.
_ACTION_ARG = {"audit": 0, "_audited": 0, "_audit_event": 0, "require": 1, "authorize": 1}
#: Calls whose ``action=`` means something else (argparse's ``action="store_true"``).
_OTHER_ACTIONS = frozenset({"add_argument"})


def action_names_in(source: str) -> Iterator[tuple[int, str]]:
    """(line, name) of every string literal that the code uses as an action: the value of an ``"action"`` key
    (route ``opt``), an ``action=`` keyword (``AuditEvent``), and the action argument of ``audit``,
    ``_audited``, ``_audit_event``, ``require`` and ``authorize``."""
    for node in ast.walk(ast.parse(source)):
        found: list[ast.expr] = []
        if isinstance(node, ast.Dict):
            found += [v for k, v in zip(node.keys, node.values, strict=True)
                      if isinstance(k, ast.Constant) and k.value == "action"]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called not in _OTHER_ACTIONS:
                found += [kw.value for kw in node.keywords if kw.arg == "action"]
            position = _ACTION_ARG.get(called or "")
            if position is not None and len(node.args) > position:
                found.append(node.args[position])
        for value in found:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                yield value.lineno, value.value


def _code_files() -> Iterator[Path]:
    for top in ("core/modelyard", "plugins/modelyard_plugins", "contrib"):
        yield from sorted((ROOT / top).rglob("*.py"))


def test_the_scan_finds_action_names_wherever_code_uses_them() -> None:
    source = '''
opt = {"action": "a:route", "resource": "x"}
AuditEvent(action="a:event", resource="x")
platform.audit("a:audit", "x", who)
self._audited("a:audited", "x", who)
platform.require(who, "a:require", "x")
platform.authorize(who, "a:authorize", "x")
platform.authorize(who, action, "x")  # not a literal: checked when it runs
print("not:an-action")
parser.add_argument("--check", action="store_true")
'''
    assert sorted(n for _, n in action_names_in(source)) == [
        "a:audit", "a:audited", "a:authorize", "a:event", "a:require", "a:route"]


def actions_used(sources: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Each action name the ``(where, source)`` pairs use, with where (``file:line``)."""
    used: dict[str, list[str]] = {}
    for where, source in sources:
        for line, name in action_names_in(source):
            used.setdefault(name, []).append(f"{where}:{line}")
    return used


def test_a_name_missing_from_the_catalogue_is_reported() -> None:
    used = actions_used([("old.py", 'platform.audit("deployments:deploy", resource, who)\n')])
    assert {n: w for n, w in used.items() if n not in Catalogue.core()} == {"deployments:deploy": ["old.py:1"]}


def test_every_action_named_in_code_is_in_the_catalogue() -> None:
    catalogue = collect_actions(get_plugin_manager())
    used = actions_used((str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in _code_files())
    unknown = {name: where for name, where in used.items() if name not in catalogue}
    assert not unknown, f"actions used in code but not in the catalogue: {unknown}"
    # The scan sees the server's routes and the platform's audit entries, so it can find a stray name.
    assert {"models:register", "deployments:create", "deployments:delete", "predict", "audit:read"} <= set(used)


def test_action_reference_is_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_action_reference.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    page = (ROOT / "docs" / "actions.md").read_text()
    for action in collect_actions(get_plugin_manager()):
        assert f"| `{action.name}` |" in page
