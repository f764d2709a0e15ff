"""Deployment records are the desired state and every serving process converges to them.

Over real sockets: two ``modelyard serve`` processes on one data dir (and one with ``workers = 2``) see a
deploy and an undeploy made through either one, or through the embedded CLI, within the stated delay. In
process: a deploy whose registry write fails serves nowhere; a failed deploy is recorded ``failed`` and fires
``failed``; readiness lists failed deployments instead of waiting for them; and a hypothesis state machine
interleaving deploy, redeploy, undeploy and restart across two platforms on one registry ends with each
runtime serving exactly what the records say.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from modelyard import Platform, hookimpl
from modelyard.client import Client
from modelyard.errors import ModelyardError, NotFound, Unavailable
from server_harness import (  # noqa: F401  (fixtures)
    ServeProcess,
    free_port,
    server_model_path,
    wait_ready,
)

X = np.random.default_rng(7).normal(size=(2, 20)).astype(np.float32)
INTERVAL_S = 0.2
#: How long a change may take to reach another process: the poll interval plus loading a tiny model, with room
#: for a shared 2-core test machine.
DELAY_S = 15.0


def _config(tmp_path: Path, **server: Any) -> Path:
    lines = [f'[platform]\ndata_dir = "{tmp_path / "data"}"\nlog_level = "warning"\n',
             f"[server]\nreconcile_interval_s = {INTERVAL_S}\n"]
    lines += [f"{k} = {v}\n" for k, v in server.items()]
    path = tmp_path / "modelyard.toml"
    path.write_text("".join(lines))
    return path


def _serves(url: str, name: str) -> bool:
    try:
        r = httpx.post(f"{url}/v2/models/{name}/infer", timeout=5.0, json={
            "inputs": [{"name": "x", "datatype": "FP32", "shape": list(X.shape), "data": X.ravel().tolist()}]})
    except httpx.TransportError:
        return False
    return r.status_code == 200


def _eventually(check: Any, what: str, timeout: float = DELAY_S) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s")


@pytest.fixture
def two_servers(tmp_path: Path) -> Any:
    config = _config(tmp_path)
    servers = [ServeProcess(config, free_port(), tmp_path / f"serve-{i}.log").start() for i in range(2)]
    try:
        for s in servers:
            wait_ready(s.url, proc=s.proc)
        yield config, servers
    finally:
        for s in servers:
            s.stop()


@pytest.mark.slow
def test_a_change_through_either_server_reaches_the_other(two_servers: Any, server_model_path: Path) -> None:  # noqa: F811
    _config_path, (a, b) = two_servers
    with Client(a.url) as ca, Client(b.url) as cb:
        ca.register("churn", server_model_path, flavor="onnx")
        assert ca.deploy("churn").state == "ready"
        # the process that took the call serves at once, and says so
        made = ca.deployment_status("churn")
        assert made["served_by"]
        assert [p["converged"] for p in made["processes"] if p["process"] == made["served_by"]] == [True]
        assert _serves(a.url, "churn")
        _eventually(lambda: _serves(b.url, "churn"), "the deploy reaching the second server")
        # both processes report that they converged to the record's generation
        _eventually(lambda: sum(p["converged"] for p in cb.deployment_status("churn")["processes"]) == 2,
                    "both processes reporting convergence")
        # a redeploy to a new version through the second server reaches the first
        cb.register("churn", server_model_path, flavor="onnx", tags={"v": "2"})
        cb.deploy("churn:2")
        def both_on_v2() -> bool:
            processes = ca.deployment_status("churn")["processes"]
            return len(processes) == 2 and all(p["version"] == 2 and p["converged"] for p in processes)

        _eventually(both_on_v2, "the redeploy reaching the first server")
        assert _serves(a.url, "churn")
        # an undeploy through the second server takes it down on the first
        cb.undeploy("churn")
        assert not _serves(b.url, "churn")
        _eventually(lambda: not _serves(a.url, "churn"), "the undeploy reaching the first server")


@pytest.mark.slow
def test_the_embedded_cli_reaches_both_servers(two_servers: Any, server_model_path: Path) -> None:  # noqa: F811
    config, (a, b) = two_servers

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "modelyard", "-c", str(config), *args], capture_output=True,
                              text=True, timeout=120)

    assert cli("models", "register", "fraud", str(server_model_path), "--flavor", "onnx").returncode == 0
    result = cli("deploy", "fraud")
    assert result.returncode == 0, result.stderr
    for server in (a, b):
        _eventually(lambda s=server: _serves(s.url, "fraud"), f"the CLI deploy reaching {server.url}")
    result = cli("undeploy", "fraud")
    assert result.returncode == 0, result.stderr
    for server in (a, b):
        _eventually(lambda s=server: not _serves(s.url, "fraud"), f"the CLI undeploy reaching {server.url}")
    with Client(a.url) as client:  # the CLI process withdrew its report when it exited
        assert client.deployments() == []


@pytest.mark.slow
def test_workers_share_every_deploy(tmp_path: Path, server_model_path: Path) -> None:  # noqa: F811
    config = _config(tmp_path, workers=2)
    server = ServeProcess(config, free_port(), tmp_path / "serve.log").start()
    try:
        wait_ready(server.url, proc=server.proc)
        with Client(server.url) as client:
            client.register("churn", server_model_path, flavor="onnx")
            client.deploy("churn")
        # Each request may land on either worker; after the delay every one of them must answer.
        time.sleep(INTERVAL_S * 5)
        _eventually(lambda: all(_serves(server.url, "churn") for _ in range(20)), "every worker serving")
        answered = sum(_serves(server.url, "churn") for _ in range(20))
        assert answered == 20, server.output()
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------- in process
def _variant(path: Path, dest: Path) -> Path:
    """The same logistic regression with another bias: other bytes, other digest."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    for i, init in enumerate(model.graph.initializer):
        if init.name == "b":
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.array([-0.5], np.float32), "b"))
    onnx.save(model, str(dest))
    return dest


@pytest.fixture
def platform(tmp_path: Path, server_model_path: Path) -> Any:  # noqa: F811
    p = Platform.from_config({"platform": {"data_dir": str(tmp_path / "data"), "log_level": "warning"}})
    p.registry.register("churn", server_model_path, flavor="onnx")
    yield p
    p.close()


def test_a_deploy_whose_record_cannot_be_written_serves_nowhere(platform: Any, monkeypatch: Any) -> None:
    def broken(*_a: Any, **_k: Any) -> Any:
        raise Unavailable("the registry is read-only")

    monkeypatch.setattr(platform.registry_backend, "put_deployment", broken)
    with pytest.raises(Unavailable, match="read-only"):
        platform.deploy("churn")
    assert not platform.runtime.ready("churn")
    assert platform.runtime.status() == {}
    with pytest.raises(NotFound):
        platform.get_deployment("churn")


def test_an_undeploy_whose_record_cannot_be_deleted_keeps_serving(platform: Any, monkeypatch: Any) -> None:
    platform.deploy("churn")

    def broken(*_a: Any, **_k: Any) -> Any:
        raise Unavailable("the registry is read-only")

    monkeypatch.setattr(platform.registry_backend, "delete_deployment", broken)
    with pytest.raises(Unavailable):
        platform.undeploy("churn")
    assert platform.runtime.ready("churn") and platform.get_deployment("churn").state == "ready"


class _Changes:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.errors: list[str] = []

    @hookimpl
    def modelyard_after_deployment_changed(self, deployment: Any, change: str) -> None:
        self.seen.append((deployment.name, change, deployment.state))

    @hookimpl
    def modelyard_on_deploy_error(self, deployment: Any, error: BaseException) -> None:
        self.errors.append(f"{deployment.name}: {error}")


def test_a_failed_deploy_is_recorded_failed_and_fires_failed(platform: Any, monkeypatch: Any) -> None:
    changes = _Changes()
    platform.plugin_manager.register(changes, name="test-changes")

    def refuse(*_a: Any, **_k: Any) -> None:
        raise ModelyardError("no memory for it")

    monkeypatch.setattr(type(platform.runtime), "deploy", refuse)  # a slotted class: patch the type
    with pytest.raises(ModelyardError, match="no memory"):
        platform.deploy("churn")
    record = platform.get_deployment("churn")
    assert record.state == "failed" and "no memory for it" in record.message
    assert changes.seen == [("churn", "failed", "failed")]
    assert changes.errors == ["churn: no memory for it"]
    waiting, failed = platform.reconciler.readiness()
    assert (waiting, failed) == ([], ["churn"])  # reported, not waited for
    monkeypatch.undo()
    again = platform.deploy("churn")  # a new desired state is tried again
    assert again.state == "ready" and platform.get_deployment("churn").state == "ready"


def test_a_failed_redeploy_keeps_the_previous_version_recorded(platform: Any, monkeypatch: Any,
                                                               server_model_path: Path) -> None:  # noqa: F811
    platform.deploy("churn")
    platform.registry.register("churn", server_model_path, flavor="onnx", tags={"v": "2"})
    real = type(platform.runtime).deploy

    def refuse_v2(self: Any, deployment: Any, source: Any) -> None:
        if deployment.version == 2:
            raise ModelyardError("v2 does not fit")
        real(self, deployment, source)

    monkeypatch.setattr(type(platform.runtime), "deploy", refuse_v2)
    with pytest.raises(ModelyardError, match="v2 does not fit"):
        platform.deploy("churn:2")
    record = platform.get_deployment("churn")
    assert record.version == 1 and record.state == "ready" and "v2 does not fit" in record.message
    assert platform.runtime.status()["churn"]["version"] == 1
    assert platform.predict("churn", {"x": X})["probability"].shape == (2, 1)


def test_readiness_lists_a_deployment_that_failed_to_restore(tmp_path: Path, server_model_path: Path) -> None:  # noqa: F811
    """A recorded deployment whose artifact is gone is ``failed`` after a restart, and readiness says so
    without waiting for it."""
    from litestar.testing import TestClient as LitestarClient
    from modelyard_plugins.server.app import create_app

    cfg = {"platform": {"data_dir": str(tmp_path / "data"), "log_level": "warning"}}
    with Platform.from_config(cfg) as first:
        version = first.registry.register("churn", server_model_path, flavor="onnx")
        first.deploy("churn")
        first.registry.register("fraud", _variant(server_model_path, tmp_path / "fraud.onnx"), flavor="onnx")
        first.deploy("fraud")
    # the artifact disappears from storage and cache (a broken bucket)
    for blob in (tmp_path / "data").rglob(version.artifact.digest + "*"):
        blob.unlink()
    second = Platform.from_config(cfg)
    app = create_app(second, dev=True)
    with LitestarClient(app) as client:
        r = client.get("/v2/health/ready")
        assert r.status_code == 200, r.text
        assert r.json() == {"ready": True, "failed": ["churn"]}
        assert client.get("/api/v1/deployments/fraud").json()["state"] == "ready"
        status = client.get("/api/v1/deployments/churn/status").json()
        assert status["state"] == "failed" and status["message"]
        assert status["processes"][0]["state"] == "failed"


# --------------------------------------------------------------------------------------------- state machine
class TwoProcesses(RuleBasedStateMachine):
    """Two platforms on one data dir stand for two serving processes: separate runtimes, separate database
    connections, one registry. After every step each one polls once (the bounded delay has passed) and its
    runtime must serve exactly the records. (Two real processes per example would make the property far too
    slow to explore; the socket tests above prove the same convergence across real processes.)"""

    data_dir: Path
    model_path: Path

    def __init__(self) -> None:
        super().__init__()
        cfg = {"platform": {"data_dir": str(self.data_dir), "log_level": "warning"}}
        self.cfg = cfg
        self.platforms = [Platform.from_config(cfg), Platform.from_config(cfg)]
        for name in [d.name for d in self.platforms[0].deployments()]:
            self.platforms[0].undeploy(name)
        for p in self.platforms:
            p.reconciler.converge_all(force=True)

    @rule(which=st.integers(0, 1), name=st.sampled_from(["a", "b"]), version=st.integers(1, 2),
          batch=st.booleans())
    def deploy(self, which: int, name: str, version: int, batch: bool) -> None:
        self.platforms[which].deploy(f"m:{version}", name=name,
                                     batching={"max_batch_size": 4, "max_wait_ms": 1} if batch else None)

    @rule(which=st.integers(0, 1), name=st.sampled_from(["a", "b"]))
    def undeploy(self, which: int, name: str) -> None:
        try:
            self.platforms[which].undeploy(name)
        except NotFound:
            pass

    @rule(which=st.integers(0, 1))
    def restart(self, which: int) -> None:
        self.platforms[which].close()
        self.platforms[which] = Platform.from_config(self.cfg)
        self.platforms[which].restore_deployments()

    @invariant()
    def runtimes_equal_records(self) -> None:
        for p in self.platforms:
            p.reconciler.poll()
        records = {d.name: (d.version, d.batching is not None) for d in self.platforms[0].deployments()}
        for p in self.platforms:
            served = {n: (s["version"], s["batching"] is not None) for n, s in p.runtime.status().items()}
            assert served == records
            for name in records:
                assert p.predict(name, {"x": X})["probability"].shape == (2, 1)

    def teardown(self) -> None:
        for p in self.platforms:
            p.close()


@pytest.mark.slow
def test_runtimes_always_converge_to_the_records(tmp_path: Path, server_model_path: Path) -> None:  # noqa: F811
    data = tmp_path / "data"
    with Platform.from_config({"platform": {"data_dir": str(data), "log_level": "warning"}}) as p:
        p.registry.register("m", server_model_path, flavor="onnx")
        p.registry.register("m", _variant(server_model_path, tmp_path / "second.onnx"), flavor="onnx")
    TwoProcesses.data_dir = data
    TwoProcesses.model_path = server_model_path
    run_state_machine_as_test(TwoProcesses, settings=settings(
        max_examples=12, stateful_step_count=8, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))
