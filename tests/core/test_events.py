"""Observers are isolated and events keep their promises (DESIGN "observers are isolated").

Each event-hook implementation is called on its own: a monitor that raises never starves the others or billing,
and its log line names its plugin; an observer of a committed change never turns it into an error; operations
that fail tell ``modelyard_on_…_error`` observers (``modelyard_on_registration_error``,
``modelyard_on_deploy_error``, ``modelyard_on_undeploy_error``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog
from modelyard import Platform, hookimpl
from modelyard.errors import BuildError, NotFound, Unavailable
from modelyard.events import notify


def _logreg(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "lin",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        initializer=[numpy_helper.from_array(np.ones((3, 1), np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


class Recorder:
    """An observer of every event."""

    def __init__(self) -> None:
        self.predictions: list[Any] = []
        self.registered: list[Any] = []
        self.changes: list[str] = []
        self.errors: list[tuple[str, str]] = []

    @hookimpl
    def modelyard_on_prediction(self, event: Any) -> None:
        self.predictions.append(event)

    @hookimpl
    def modelyard_after_model_registered(self, version: Any) -> None:
        self.registered.append(version)

    @hookimpl
    def modelyard_after_deployment_changed(self, deployment: Any, change: str) -> None:
        self.changes.append(change)

    @hookimpl
    def modelyard_on_registration_error(self, model: str, flavor: str, error: BaseException) -> None:
        self.errors.append(("register", f"{model}/{flavor}: {type(error).__name__}"))

    @hookimpl
    def modelyard_on_undeploy_error(self, deployment: Any, error: BaseException) -> None:
        self.errors.append(("undeploy", deployment.name))


class Raising:
    """An observer that fails at every event it sees."""

    @hookimpl
    def modelyard_on_prediction(self, event: Any) -> None:
        raise RuntimeError("monitor down")

    @hookimpl
    def modelyard_after_model_registered(self, version: Any) -> None:
        raise RuntimeError("webhook down")

    @hookimpl
    def modelyard_after_deployment_changed(self, deployment: Any, change: str) -> None:
        raise RuntimeError("pager down")


@pytest.fixture
def platform(tmp_path: Path) -> Any:
    with Platform.from_config({"platform": {"data_dir": str(tmp_path / "data"), "log_level": "warning"}}) as p:
        yield p


def _register_both_orders(platform: Any) -> tuple[Recorder, Recorder]:
    # One recorder registered before the raising observer, one after: pluggy calls newest first, so with a plain
    # hook call the earlier-registered one would see nothing.
    early, late = Recorder(), Recorder()
    platform.plugin_manager.register(early, name="early-recorder")
    platform.plugin_manager.register(Raising(), name="raising-monitor")
    platform.plugin_manager.register(late, name="late-recorder")
    return early, late


def test_a_raising_monitor_starves_no_other_observer(platform: Any, tmp_path: Path) -> None:
    early, late = _register_both_orders(platform)
    billing_seen: list[Any] = []
    original = type(platform.billing).__dict__.get("modelyard_on_prediction")
    if original is None:  # the embedded "none" billing does not listen: stand one in, registered first
        class Billing:
            @hookimpl
            def modelyard_on_prediction(self, event: Any) -> None:
                billing_seen.append(event)
        platform.plugin_manager.register(Billing(), name="billing:test")
    with structlog.testing.capture_logs() as logs:
        version = platform.registry.register("lin", _logreg(tmp_path / "lin.onnx"), flavor="onnx")
        platform.deploy("lin")
        for _ in range(3):
            out = platform.predict("lin", {"x": np.ones((2, 3), np.float32)})
            np.testing.assert_allclose(out["y"], np.full((2, 1), 3.0))
    for recorder in (early, late):
        assert [(e.deployment, e.version, e.ok, e.rows) for e in recorder.predictions] == [("lin", 1, True, 2)] * 3
        assert [v.number for v in recorder.registered] == [version.number]
        assert recorder.changes == ["deployed"]
    if original is None:
        assert len(billing_seen) == 3
    failures = [entry for entry in logs if entry["event"] == "event observer failed"]
    assert {entry["hook"] for entry in failures} == {"modelyard_on_prediction", "modelyard_after_model_registered",
                                                       "modelyard_after_deployment_changed"}
    assert all(entry["plugin"] == "raising-monitor" for entry in failures)


def test_a_raising_observer_leaves_the_registration_committed_and_audited(platform: Any, tmp_path: Path) -> None:
    platform.plugin_manager.register(Raising(), name="raising-monitor")
    version = platform.registry.register("lin", _logreg(tmp_path / "lin.onnx"), flavor="onnx")
    assert version.number == 1
    assert platform.registry.get_version("lin:1") == version
    audit = platform.registry_backend.list_audit().items
    assert [(e.action, e.outcome) for e in audit if e.action == "models:register"] == [("models:register", "ok")]


def test_a_raising_deployment_observer_leaves_the_deploy_done(platform: Any, tmp_path: Path) -> None:
    platform.plugin_manager.register(Raising(), name="raising-monitor")
    platform.registry.register("lin", _logreg(tmp_path / "lin.onnx"), flavor="onnx")
    dep = platform.deploy("lin")
    assert dep.state == "ready" and platform.get_deployment("lin").state == "ready"
    platform.undeploy("lin")
    with pytest.raises(NotFound):
        platform.get_deployment("lin")


def test_a_failed_registration_tells_its_observers(platform: Any, tmp_path: Path) -> None:
    recorder = Recorder()
    platform.plugin_manager.register(recorder)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(BuildError):
        platform.registry.register("lin", bad, flavor="onnx")
    assert recorder.errors == [("register", "lin/onnx: BuildError")]
    assert recorder.registered == []


def test_a_failed_undeploy_tells_its_observers(platform: Any, tmp_path: Path, monkeypatch: Any) -> None:
    recorder = Recorder()
    platform.plugin_manager.register(recorder)
    platform.registry.register("lin", _logreg(tmp_path / "lin.onnx"), flavor="onnx")
    platform.deploy("lin")

    def broken(*_a: Any, **_k: Any) -> None:
        raise Unavailable("database is read-only")

    monkeypatch.setattr(platform.registry_backend, "delete_deployment", broken)
    with pytest.raises(Unavailable):
        platform.undeploy("lin")
    assert recorder.errors == [("undeploy", "lin")]


def test_notify_passes_each_implementation_only_its_arguments() -> None:
    import pluggy
    from modelyard import hookspecs
    from modelyard.plugins import get_plugin_manager

    seen: list[Any] = []

    class NamesOne:
        @hookimpl
        def modelyard_after_alias_set(self, alias: str) -> None:
            seen.append(alias)

    pm = get_plugin_manager(load_entrypoints=False, plugins=[NamesOne()])
    assert isinstance(pm, pluggy.PluginManager) and hookspecs
    assert notify(pm.hook, "modelyard_after_alias_set", version=object(), alias="production") == 0
    assert seen == ["production"]
