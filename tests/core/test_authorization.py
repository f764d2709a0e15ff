"""One decision point (DESIGN): every Platform verb called from Python — as the CLI, the scheduler and the server
call them — decides once, through ``Platform.require`` with a Principal; a deny raises Forbidden, changes nothing
and, for an audited action, is written to the audit log as ``denied``; the predict path's checks are in memory."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelyard import hookimpl
from modelyard.actions import UnknownAction
from modelyard.errors import Forbidden, QuotaExceeded
from modelyard.platform import Platform
from modelyard.types import LOCAL, ModelRef, Principal

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

N = 4
BOB = Principal(id="bob", roles=("maintainer",), team="growth")


def _linear_onnx(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "lin",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", N])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", N])],
        initializer=[numpy_helper.from_array(np.eye(N, dtype=np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


class Decisions:
    """Records every decision it takes part in; denies the actions in ``deny``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.deny: set[str] = set()

    @hookimpl
    def modelyard_authorize(self, principal: Principal, action: str, resource: str) -> bool | None:
        self.seen.append((principal.id, action, resource))
        return False if action in self.deny else None

    def take(self) -> list[tuple[str, str, str]]:
        seen, self.seen = self.seen, []
        return seen


class Changes:
    """Records the deployment changes observers are told about."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []

    @hookimpl
    def modelyard_after_deployment_changed(self, deployment: Any, change: str) -> None:
        self.changes.append((deployment.name, change))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return _linear_onnx(tmp_path / "lin.onnx")


@pytest.fixture
def platform(tmp_path: Path):
    with Platform.from_config({"platform": {"data_dir": str(tmp_path / "data"), "log_level": "warning"}}) as p:
        yield p


@pytest.fixture
def decisions(platform: Platform) -> Decisions:
    hook = Decisions()
    platform.plugin_manager.register(hook, name="decisions")
    return hook


def _audit(platform: Platform) -> list[tuple[str, str, str, str]]:
    return [(e.action, e.resource, e.principal, e.outcome)
            for e in reversed(platform.registry_backend.list_audit(limit=1000).items)]


def test_a_vetoed_deploy_from_python_raises_forbidden_and_records_only_the_denial(platform, decisions, model):
    platform.registry.register("lin", model, flavor="onnx")
    changes = Changes()
    platform.plugin_manager.register(changes, name="changes")
    decisions.deny = {"deployments:create"}
    before = _audit(platform)
    with pytest.raises(Forbidden, match="'bob' may not deployments:create on deployments/lin") as err:
        platform.deploy("lin", principal=BOB)
    assert err.value.status == 403
    assert platform.registry_backend.list_deployments() == []
    assert not platform.runtime.ready("lin") and changes.changes == []
    assert _audit(platform) == [*before, ("deployments:create", "deployments/lin", "bob", "denied")]
    # The same deploy without the veto goes through: the deny was the decision, nothing else.
    decisions.deny = set()
    assert platform.deploy("lin", principal=BOB).state == "ready"
    assert _audit(platform)[-1] == ("deployments:create", "deployments/lin", "bob", "ok")


def test_a_vetoed_registration_and_undeploy_change_nothing(platform, decisions, model):
    decisions.deny = {"models:register", "deployments:delete"}
    with pytest.raises(Forbidden, match="models:register on models/lin"):
        platform.registry.register("lin", model, flavor="onnx", principal=BOB)
    assert platform.registry_backend.list_models().total == 0 and list(platform.storage.list()) == []
    decisions.deny = {"deployments:delete"}
    platform.registry.register("lin", model, flavor="onnx")
    platform.deploy("lin")
    with pytest.raises(Forbidden):
        platform.undeploy("lin", principal=BOB)
    assert platform.runtime.ready("lin") and platform.registry_backend.get_deployment("lin").state == "ready"
    assert [a for a in _audit(platform) if a[3] == "denied"] == [
        ("models:register", "models/lin", "bob", "denied"), ("deployments:delete", "deployments/lin", "bob", "denied")]


def test_every_verb_decides_exactly_once_with_its_action_and_resource(platform, decisions, model):
    registry = platform.registry
    calls = [
        (lambda: registry.create_model("empty", principal=BOB), ("models:create", "models/empty")),
        (lambda: registry.register("lin", model, flavor="onnx", principal=BOB), ("models:register", "models/lin")),
        (lambda: registry.set_alias("lin", 1, "production", principal=BOB),
         ("models:alias", "models/lin/aliases/production")),
        (lambda: registry.set_tags("lin", {"team": "growth"}, principal=BOB), ("models:tag", "models/lin")),
        (lambda: registry.set_tags("lin", {"ok": "1"}, version=1, principal=BOB),
         ("models:tag", "models/lin/versions/1")),
        (lambda: registry.get_model("lin", principal=BOB), ("models:read", "models/lin")),
        (lambda: registry.list_models(principal=BOB), ("models:read", "models")),
        (lambda: registry.list_versions("lin", principal=BOB), ("models:read", "models/lin")),
        (lambda: registry.get_version("lin@production", principal=BOB), ("models:read", "models/lin")),
        (lambda: registry.resolve(ModelRef("lin", version=1), principal=BOB), ("models:read", "models/lin")),
        (lambda: registry.search(prefix="l", principal=BOB), ("models:read", "models")),
        (lambda: platform.deploy("lin", name="web", principal=BOB), ("deployments:create", "deployments/web")),
        (lambda: platform.deployments(principal=BOB), ("deployments:read", "deployments")),
        (lambda: platform.get_deployment("web", principal=BOB), ("deployments:read", "deployments/web")),
        (lambda: platform.serving("web", principal=BOB), ("deployments:read", "deployments/web")),
        (lambda: platform.undeploy("web", principal=BOB), ("deployments:delete", "deployments/web")),
        (lambda: registry.delete_alias("lin", "production", principal=BOB),
         ("models:unalias", "models/lin/aliases/production")),
    ]
    for call, (action, resource) in calls:
        call()
        assert decisions.take() == [("bob", action, resource)], action
        assert platform.actions.get(action).matches(resource)
    # Every audited entry names a catalogue action and a resource of its shape.
    for action, resource, principal, _ in _audit(platform):
        assert platform.actions.get(action).matches(resource) and principal == "bob"


def test_without_a_principal_the_local_principal_acts(platform, decisions, model):
    platform.registry.register("lin", model, flavor="onnx")
    platform.deploy("lin")
    assert {who for who, _, _ in decisions.take()} == {"local"}
    assert platform.local_principal == LOCAL and LOCAL.roles == ("admin",)
    assert {e[2] for e in _audit(platform)} == {"local"}


def test_actor_is_a_deprecated_alias_for_the_local_principal_under_that_id(platform, decisions, model):
    with pytest.warns(DeprecationWarning, match="actor= is deprecated"):
        platform.registry.register("lin", model, flavor="onnx", actor="alice")
    with pytest.warns(DeprecationWarning):
        platform.deploy("lin", actor="alice")
    assert [d[0] for d in decisions.take()] == ["alice", "alice"]
    assert [e[2] for e in _audit(platform)] == ["alice", "alice"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        platform.registry.get_model("lin", principal=BOB)  # principal= warns nothing


def test_reads_are_decided_but_not_audited(platform, decisions, model):
    platform.registry.register("lin", model, flavor="onnx")
    decisions.deny = {"models:read", "deployments:read"}
    before = _audit(platform)
    for read in (lambda: platform.registry.get_model("lin", principal=BOB),
                 lambda: platform.registry.list_models(principal=BOB),
                 lambda: platform.deployments(principal=BOB)):
        with pytest.raises(Forbidden):
            read()
    assert _audit(platform) == before


def test_a_failing_auth_provider_denies(platform, monkeypatch):
    class Broken:
        def authorize(self, principal: Principal, action: str, resource: str) -> bool:
            raise RuntimeError("policy store down")

    monkeypatch.setattr(platform, "auth", Broken())
    with pytest.raises(Forbidden):
        platform.registry.list_models(principal=BOB)


def test_an_unknown_action_is_a_bug_not_a_deny(platform):
    with pytest.raises(UnknownAction, match="did you mean 'deployments:delete'"):
        platform.authorize(BOB, "deployments:deploy", "deployments/x")
    before = _audit(platform)
    with pytest.raises(UnknownAction):
        platform.audit("deployments:deploy", "deployments/x", BOB)
    assert _audit(platform) == before


class Quota:
    """A meter whose quota for ``bob`` is used up; otherwise like the ``none`` meter."""

    def __init__(self) -> None:
        self.checked: list[tuple[str, str]] = []

    def check_quota(self, principal: Principal, deployment: str) -> None:
        self.checked.append((principal.id, deployment))
        if principal.id == "bob":
            raise QuotaExceeded("bob has used his 1000 calls this month", retry_after=60.0)


def test_the_predict_checks_decide_then_check_the_quota(platform, decisions, monkeypatch):
    meter = Quota()
    monkeypatch.setattr(platform, "billing", meter)
    assert platform.check_predict(None, "lin") is LOCAL
    carol = Principal(id="carol")
    assert platform.check_predict(carol, "lin") is carol
    with pytest.raises(QuotaExceeded) as err:
        platform.check_predict(BOB, "lin")
    assert err.value.status == 429 and err.value.retry_after == 60.0
    assert decisions.take() == [("local", "predict", "deployments/lin"), ("carol", "predict", "deployments/lin"),
                                ("bob", "predict", "deployments/lin")]
    decisions.deny = {"predict"}
    before = _audit(platform)
    with pytest.raises(Forbidden):
        platform.check_predict(carol, "lin")
    assert meter.checked == [("local", "lin"), ("carol", "lin"), ("bob", "lin")]  # no quota check once denied
    assert _audit(platform) == before  # predict is not audited: a denied prediction writes nothing
