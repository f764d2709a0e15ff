"""The embedded stack end to end: ``Platform.from_config`` with every default (sql on SQLite, fsspec on a local
directory, the onnx builder, the local runtime and scheduler, and the basics plugin's providers)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from local_models import expected, rows
from modelyard import errors, hookimpl
from modelyard.jobs import JobKind
from modelyard.platform import Platform
from modelyard_plugins.basics import AnonymousAuth, LogMonitor, NoBilling
from modelyard_plugins.local import LocalRuntime, LocalScheduler


@pytest.fixture
def platform(tmp_path):
    with Platform.from_config({"platform": {"data_dir": str(tmp_path / "data")},
                               "monitors": [{"use": "log", "interval_s": 3600}]}) as p:
        yield p


def test_register_deploy_predict_on_the_embedded_defaults(platform, onnx_paths) -> None:
    assert isinstance(platform.runtime, LocalRuntime) and isinstance(platform.scheduler, LocalScheduler)
    assert isinstance(platform.auth, AnonymousAuth) and isinstance(platform.billing, NoBilling)
    (monitor,) = platform.monitors
    assert isinstance(monitor, LogMonitor)

    v1 = platform.registry.register("linear", onnx_paths[1], flavor="onnx")
    platform.registry.set_alias("linear", v1.number, "production")
    dep = platform.deploy("linear")
    assert (dep.name, dep.version) == ("linear", 1)
    x = rows(4)
    np.testing.assert_allclose(platform.predict("linear", {"x": x})["y"], expected(1, x), rtol=1e-4, atol=1e-3)
    out = asyncio.run(platform.apredict("linear", {"x": x}))
    np.testing.assert_allclose(out["y"], expected(1, x), rtol=1e-4, atol=1e-3)
    assert platform.runtime.status()["linear"]["requests"] == 2

    # A new version replaces the old one under the same name.
    v2 = platform.registry.register("linear", onnx_paths[2], flavor="onnx")
    platform.deploy(f"linear:{v2.number}")
    np.testing.assert_allclose(platform.predict("linear", {"x": x})["y"], expected(2, x), rtol=1e-4, atol=1e-3)
    assert platform.get_deployment("linear").version == 2

    with pytest.raises(errors.NotFound):
        platform.predict("nope", {"x": x})

    # Every prediction reached the log monitor through the event hook, labelled with model and version.
    summaries = {(s["deployment"], s["version"]): s for s in monitor.flush()}
    assert summaries[("linear", 2)]["count"] == 3  # the newest event's version labels the line
    assert summaries[("nope", 0)]["errors"] == 1

    platform.undeploy("linear")
    assert not platform.runtime.ready("linear") and platform.deployments() == []


def test_scheduler_jobs_fire_the_platform_hook(platform) -> None:
    finished = []

    class Listener:
        @hookimpl
        def modelyard_after_job_finished(self, job):
            finished.append(job)

        @hookimpl
        def modelyard_job_kinds(self):
            yield JobKind(name="noop", run=lambda params, ctx: {"n": params["n"]})

    platform.plugin_manager.register(Listener())
    job = platform.scheduler.submit("noop", {"n": 3})
    assert platform.scheduler.wait(job.id, 5).result == {"n": 3}
    assert [j.id for j in finished] == [job.id]


def test_restore_deployments_after_a_restart(tmp_path, onnx_paths) -> None:
    config = {"platform": {"data_dir": str(tmp_path / "data")}}
    with Platform.from_config(config) as first:
        first.registry.register("linear", onnx_paths[1], flavor="onnx")
        first.deploy("linear", batching={"max_batch_size": 8, "max_wait_ms": 1})
    with Platform.from_config(config) as second:
        assert not second.runtime.ready("linear")
        assert [d.name for d in second.restore_deployments()] == ["linear"]
        x = rows(2)
        np.testing.assert_allclose(second.predict("linear", {"x": x})["y"], expected(1, x), rtol=1e-4, atol=1e-3)
        assert second.runtime.status()["linear"]["batching"] == {"max_batch_size": 8, "max_wait_ms": 1,
                                                                 "wait_when_idle": False}
