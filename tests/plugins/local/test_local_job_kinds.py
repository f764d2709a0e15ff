"""Job kinds on the embedded stack: a test plugin's kind, submitted by name through ``platform.scheduler``, runs
with the assembled platform in its context; its finished record reaches the job-finished hook."""

from __future__ import annotations

import attrs
import pytest
from modelyard import errors, hookimpl
from modelyard.jobs import JobKind
from modelyard.platform import Platform
from modelyard.plugins import get_plugin_manager


@attrs.frozen(kw_only=True)
class CountParams:
    """What the ``count-models`` kind takes."""

    prefix: str = ""


class ModelCounter:
    """A test plugin: a job kind that reads the registry of the platform it runs in, and a job observer."""

    def __init__(self) -> None:
        self.finished = []

    @hookimpl
    def modelyard_job_kinds(self):
        yield JobKind(name="count-models", run=self.count, params_schema=CountParams,
                      description="count the registered models whose name starts with a prefix")

    @staticmethod
    def count(params: CountParams, ctx) -> dict:
        return {"models": ctx.platform.registry.list_models(prefix=params.prefix or None).total}

    @hookimpl
    def modelyard_after_job_finished(self, job):
        self.finished.append(job)


@pytest.fixture
def counter():
    return ModelCounter()


@pytest.fixture
def platform(tmp_path, counter):
    pm = get_plugin_manager(plugins=[("counter", counter)])
    with Platform.from_config({"platform": {"data_dir": str(tmp_path / "data")}}, plugin_manager=pm) as p:
        yield p


def test_a_plugin_job_kind_runs_by_name_on_the_platform(platform, counter, onnx_paths) -> None:
    platform.registry.register("linear", onnx_paths[1], flavor="onnx")
    job = platform.scheduler.submit("count-models", {"prefix": "lin"})
    done = platform.scheduler.wait(job.id, 10)
    assert (done.state, done.result) == ("succeeded", {"models": 1})
    assert [j.id for j in counter.finished] == [job.id]

    with pytest.raises(errors.InvalidInput) as info:
        platform.scheduler.submit("count-models", {"prefix": 3})
    assert info.value.field == "params.prefix"
    with pytest.raises(errors.InvalidInput) as info:
        platform.scheduler.submit("count_models")
    assert info.value.field == "kind" and "did you mean 'count-models'" in str(info.value)
