"""The assembled Platform with the real embedded plugins: events reach observers, decisions fail closed, and a
failed registration leaves registry and storage exactly as they were."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from modelyard import Platform, hookimpl
from modelyard.errors import BuildError, InvalidInput, NotFound
from modelyard.hookspecs.auth import Authenticator
from modelyard.hookspecs.registry import RegistryBackend
from modelyard.hookspecs.runtime import Runtime
from modelyard.hookspecs.scheduler import Scheduler
from modelyard.hookspecs.storage import ArtifactStore
from modelyard.plugins import get_plugin_manager
from modelyard.providers import MonitorProvider
from modelyard.types import ANONYMOUS, Principal
from onnx import TensorProto, helper, numpy_helper
from tiny_models import linear_onnx

N = 4




class Recorder:
    """A plugin that records every event hook call."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def _rec(self, name, **kw):
        self.calls.append((name, kw))

    @hookimpl
    def modelyard_after_startup(self, platform):
        self._rec("startup", platform=platform)

    @hookimpl
    def modelyard_before_shutdown(self, platform):
        self._rec("shutdown", platform=platform)

    @hookimpl
    def modelyard_after_model_registered(self, version):
        self._rec("registered", version=version)

    @hookimpl
    def modelyard_after_alias_set(self, version, alias):
        self._rec("alias", version=version, alias=alias)

    @hookimpl
    def modelyard_after_deployment_changed(self, deployment, change):
        self._rec("deployment", deployment=deployment, change=change)

    @hookimpl
    def modelyard_on_prediction(self, event):
        self._rec("prediction", event=event)

    def names(self):
        return [n for n, _ in self.calls]


@attrs.frozen
class AlertConfig:
    """Options of the test's recording monitor."""

    label: str = "test"


class AlertMonitor:
    """A monitor provider's service: registered as an observer by the Platform because it implements hooks."""

    def __init__(self, config):
        self.config = config
        self.alerts = []
        self.predictions = 0

    @hookimpl
    def modelyard_on_alert(self, name, severity, message, labels):
        self.alerts.append((name, severity, message, dict(labels)))

    @hookimpl
    def modelyard_on_prediction(self, event):
        self.predictions += 1


class AlertPlugin:
    @hookimpl
    def modelyard_monitors(self):
        yield MonitorProvider(name="recorder", factory=lambda cfg, ctx: AlertMonitor(cfg), config_schema=AlertConfig)


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def platform(tmp_path, recorder):
    pm = get_plugin_manager(plugins=[("recorder", recorder), ("alerts", AlertPlugin())])
    config = {"platform": {"data_dir": str(tmp_path / "data")},
              "monitors": [{"use": "log"}, {"use": "recorder", "label": "x"}]}
    with Platform.from_config(config, plugin_manager=pm) as p:
        yield p


def test_every_slot_is_filled_with_an_embedded_default(platform):
    assert isinstance(platform.registry_backend, RegistryBackend)
    assert isinstance(platform.storage, ArtifactStore)
    assert isinstance(platform.runtime, Runtime)
    assert isinstance(platform.scheduler, Scheduler)
    assert isinstance(platform.auth, Authenticator)
    assert "onnx" in platform.builders
    assert {c.provider.name for c in platform.config.slots["monitors"]} == {"log", "recorder"}


def test_lifecycle_and_event_hooks_reach_plugins(platform, recorder, tmp_path):
    assert recorder.names()[0] == "startup"
    v = platform.registry.register("lin", linear_onnx(tmp_path / "m.onnx"), flavor="onnx", alias="production")
    assert ("registered", {"version": v}) in recorder.calls
    assert [kw["alias"] for n, kw in recorder.calls if n == "alias"] == ["production"]

    platform.deploy("lin")
    x = np.arange(2 * N, dtype=np.float32).reshape(2, N)
    np.testing.assert_allclose(platform.predict("lin", {"x": x})["y"], x * 2)
    events = [kw["event"] for n, kw in recorder.calls if n == "prediction"]
    assert len(events) == 1 and events[0].rows == 2 and events[0].ok
    assert (events[0].model, events[0].version, events[0].deployment) == ("lin", v.number, "lin")

    v2 = platform.registry.register("lin", linear_onnx(tmp_path / "m2.onnx", 3.0), flavor="onnx")
    platform.deploy(f"lin:{v2.number}")
    np.testing.assert_allclose(platform.predict("lin", {"x": x})["y"], x * 3)
    platform.undeploy("lin")
    changes = [kw["change"] for n, kw in recorder.calls if n == "deployment"]
    assert changes == ["deployed", "updated", "undeployed"]
    with pytest.raises(NotFound):
        platform.predict("lin", {"x": x})

    platform.close()
    assert recorder.names()[-1] == "shutdown"


def test_configured_monitors_are_registered_as_observers(platform, tmp_path):
    monitor = next(m for m in platform.monitors if isinstance(m, AlertMonitor))
    assert monitor.config == AlertConfig(label="x")
    platform.hook.modelyard_on_alert(name="drift", severity="warning", message="psi 0.3", labels={"d": "lin"})
    assert monitor.alerts == [("drift", "warning", "psi 0.3", {"d": "lin"})]
    platform.registry.register("lin", linear_onnx(tmp_path / "m.onnx"), flavor="onnx")
    platform.deploy("lin")
    platform.predict("lin", {"x": np.ones((1, N), np.float32)})
    assert monitor.predictions == 1


def test_a_failing_observer_does_not_fail_the_prediction(platform, tmp_path):
    class Broken:
        @hookimpl
        def modelyard_on_prediction(self, event):
            raise RuntimeError("observer bug")

    platform.plugin_manager.register(Broken(), name="broken")
    platform.registry.register("lin", linear_onnx(tmp_path / "m.onnx"), flavor="onnx")
    platform.deploy("lin")
    out = platform.predict("lin", {"x": np.ones((1, N), np.float32)})
    np.testing.assert_allclose(out["y"], 2 * np.ones((1, N)))


def test_authorisation_any_deny_wins_and_errors_fail_closed(platform):
    assert platform.authorize(ANONYMOUS, "models:register", "models/a")

    class DenyDeletes:
        @hookimpl
        def modelyard_authorize(self, principal, action, resource):
            return False if action == "deployments:delete" else None

    platform.plugin_manager.register(DenyDeletes(), name="deny-deletes")
    assert platform.authorize(ANONYMOUS, "models:register", "models/a")
    assert not platform.authorize(ANONYMOUS, "deployments:delete", "deployments/a")

    class Crashes:
        @hookimpl
        def modelyard_authorize(self, principal, action, resource):
            raise RuntimeError("policy engine down")

    platform.plugin_manager.register(Crashes(), name="crashes")
    assert not platform.authorize(Principal(id="u"), "models:register", "models/a")


def _state(platform):
    return (
        [(m.name, m.latest_version, dict(m.aliases)) for m in platform.registry.list_models().items],
        sorted(platform.storage.list()),
    )


def test_database_error_during_registration_leaves_nothing_behind(platform, tmp_path, monkeypatch):
    platform.registry.register("lin", linear_onnx(tmp_path / "a.onnx"), flavor="onnx")
    before = _state(platform)

    def fail(new):
        raise RuntimeError("database went away")

    monkeypatch.setattr(platform.registry_backend, "create_version", fail)
    with pytest.raises(RuntimeError, match="database went away"):
        platform.registry.register("lin", linear_onnx(tmp_path / "b.onnx", 5.0), flavor="onnx")
    monkeypatch.undo()
    assert _state(platform) == before  # no version and the new blob was removed
    assert platform.registry.list_versions("lin").total == 1


def test_database_error_keeps_a_blob_that_another_version_uses(platform, tmp_path, monkeypatch):
    path = linear_onnx(tmp_path / "a.onnx")
    platform.registry.register("lin", path, flavor="onnx")
    before = _state(platform)
    monkeypatch.setattr(platform.registry_backend, "create_version",
                        lambda new: (_ for _ in ()).throw(RuntimeError("db")))
    with pytest.raises(RuntimeError):
        platform.registry.register("other", path, flavor="onnx")
    monkeypatch.undo()
    assert _state(platform) == before  # the shared artifact is still there


def test_storage_failure_half_way_leaves_nothing_registered(platform, tmp_path, monkeypatch):
    before = _state(platform)
    real = platform.storage

    class FailingStorage:
        """Delegates to the real store but feeds ``put`` a stream that breaks half-way."""

        def __getattr__(self, name):
            return getattr(real, name)

        def put(self, source):
            return failing_put(source)

    def failing_put(source):
        class Exploding:
            """A stream that breaks after the first chunk, like a connection dropping mid-upload."""

            def __init__(self, f):
                self.f, self.reads = f, 0

            def read(self, n=-1):
                self.reads += 1
                if self.reads > 1:
                    raise OSError("connection reset while uploading")
                return self.f.read(16)

        with open(source, "rb") as f:
            return real.put(Exploding(f))

    monkeypatch.setattr(platform, "storage", FailingStorage())
    with pytest.raises(OSError, match="connection reset"):
        platform.registry.register("lin", linear_onnx(tmp_path / "a.onnx"), flavor="onnx")
    monkeypatch.undo()
    assert _state(platform) == before
    with pytest.raises(NotFound):
        platform.registry.get_model("lin")


def test_failed_validation_and_bad_input_record_nothing(platform, tmp_path):
    before = _state(platform)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(BuildError):
        platform.registry.register("lin", bad, flavor="onnx")
    with pytest.raises(BuildError):
        platform.registry.register("lin", linear_onnx(tmp_path / "m.onnx"), flavor="onnx",
                                   sample_input={"x": np.ones((1, N), np.float32)},
                                   expected_output={"y": np.zeros((1, N), np.float32)})
    with pytest.raises(InvalidInput) as err:
        platform.registry.register("../etc", linear_onnx(tmp_path / "m.onnx"), flavor="onnx")
    assert err.value.field == "name"
    with pytest.raises(InvalidInput) as err:
        platform.registry.register("lin", linear_onnx(tmp_path / "m.onnx"), flavor="keras3")
    assert err.value.field == "flavor"
    with pytest.raises(InvalidInput):
        platform.registry.register("lin", tmp_path / "missing.onnx", flavor="onnx")
    assert _state(platform) == before
    assert not list((platform.tmp_dir).iterdir())  # build workdirs are cleaned up


def test_mutating_actions_are_audited_with_their_outcome(platform, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(BuildError):
        platform.registry.register("lin", bad, flavor="onnx", principal=Principal(id="alice"))
    v = platform.registry.register("lin", linear_onnx(tmp_path / "m.onnx"), flavor="onnx",
                                   principal=Principal(id="bob"))
    with pytest.raises(NotFound):
        platform.registry.set_alias("lin", 7, "production", principal=Principal(id="carol"))
    platform.deploy("lin", principal=Principal(id="dave"))
    events = list(reversed(platform.registry_backend.list_audit(limit=100).items))
    summary = [(e.action, e.resource, e.principal, e.outcome) for e in events]
    assert summary == [
        ("models:register", "models/lin", "alice", "error"),
        ("models:register", f"models/lin/versions/{v.number}", "bob", "ok"),
        ("models:alias", "models/lin/aliases/production", "carol", "error"),
        ("deployments:create", "deployments/lin", "dave", "ok"),
    ]
    assert "BuildError" in events[0].details["error"] and events[1].details["digest"] == v.artifact.digest


def test_a_concurrent_failed_registration_cannot_leave_a_version_without_its_blob(platform, tmp_path,
                                                                                    monkeypatch):
    """Two registrations of the same bytes: the failing one removes the blob between the other's put and its
    commit (it sees no version using it yet); the committed version must still find its artifact."""
    path = linear_onnx(tmp_path / "a.onnx")
    backend = platform.registry_backend
    real_create = backend.create_version

    def create_after_a_concurrent_cleanup(new):
        platform.storage.delete(new.artifact.digest)  # what the other registration's cleanup does
        return real_create(new)

    monkeypatch.setattr(platform, "registry_backend", _Proxy(backend, create_version=create_after_a_concurrent_cleanup))
    v = platform.registry.register("lin", path, flavor="onnx")
    monkeypatch.undo()
    assert platform.storage.exists(v.artifact.digest)
    platform.deploy("lin")
    assert platform.predict("lin", {"x": np.ones((1, N), np.float32)})["y"].shape == (1, N)


class _Proxy:
    """Delegates to ``target`` except for the attributes given."""

    def __init__(self, target, **overrides):
        self._target, self._overrides = target, overrides

    def __getattr__(self, name):
        return self._overrides.get(name) or getattr(self._target, name)


def test_batching_needs_a_dynamic_batch_dimension(platform, tmp_path):
    w = np.eye(N, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, N])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, N])],
        initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (tmp_path / "fixed.onnx").write_bytes(model.SerializeToString())
    platform.registry.register("fixed", tmp_path / "fixed.onnx", flavor="onnx")
    with pytest.raises(InvalidInput, match=r"input 'x' .* shape \[2, 4\]") as err:
        platform.deploy("fixed", batching={"max_batch_size": 8})
    assert err.value.field == "batching"
    with pytest.raises(NotFound):
        platform.get_deployment("fixed")
    platform.deploy("fixed")  # without batching it serves
    np.testing.assert_allclose(platform.predict("fixed", {"x": np.ones((2, N), np.float32)})["y"], np.ones((2, N)))


def test_a_tampered_cache_file_is_fetched_again(platform, tmp_path):
    v = platform.registry.register("lin", linear_onnx(tmp_path / "m.onnx"), flavor="onnx")
    platform.deploy("lin")
    cached = platform.data_dir / "cache" / v.artifact.digest
    assert cached.exists()
    platform.undeploy("lin")
    cached.write_bytes(b"garbage")
    platform.deploy("lin")
    assert cached.read_bytes() != b"garbage"
    np.testing.assert_allclose(platform.predict("lin", {"x": np.ones((1, N), np.float32)})["y"], 2 * np.ones((1, N)))


def test_huge_numbers_are_invalid_input_not_crashes(platform):
    from modelyard.types import ModelRef

    for call in (lambda: platform.registry.get_version("lin", 10**20),
                 lambda: platform.registry.list_versions("lin", offset=10**20),
                 lambda: platform.registry.set_alias("lin", 10**20, "production"),
                 lambda: platform.deploy("lin:99999999999999999999"),
                 lambda: ModelRef.parse("lin:99999999999999999999")):
        with pytest.raises(InvalidInput):
            call()
