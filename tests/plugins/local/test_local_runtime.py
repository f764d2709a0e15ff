"""The local runtime with real onnxruntime models: deploy, predict, batching, back-pressure, redeploy, memory budget.

Blocking callers go through a :class:`~modelyard.bridge.SyncBridge` (the ``sync`` fixture), as the Platform's sync
facade does: the runtime itself is async only."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from local_models import FEATURES, deployment, expected, rows, wait_until
from modelyard import errors
from modelyard.config import structure
from modelyard.hookspecs.runtime import Runtime
from modelyard.types import BatchingConfig, Prediction
from modelyard_plugins.local import modelyard_runtimes
from modelyard_plugins.local.runtime import LocalRuntime, LocalRuntimeConfig


@pytest.fixture
def runtime(sources):
    rt = LocalRuntime(LocalRuntimeConfig(threads=4), loader=sources)
    yield rt
    rt.close()


def close_to(out, version: int, x: np.ndarray) -> bool:
    outputs = out.outputs if isinstance(out, Prediction) else out
    return np.allclose(outputs["y"], expected(version, x), rtol=1e-4, atol=1e-3)


def version_served(runtime, name: str) -> int:
    return runtime.status()[name]["version"]


# --------------------------------------------------------------------------------------------- basics
def test_deploy_predict_and_the_prediction_says_what_happened(runtime, sources, sync) -> None:
    assert isinstance(runtime, Runtime)
    assert not hasattr(runtime, "info") and not hasattr(runtime, "apredict")  # one predict, async
    runtime.deploy(deployment(), sources(1))
    assert runtime.ready("linear")
    x = rows(5)
    prediction = asyncio.run(runtime.predict("linear", {"x": x}))
    assert isinstance(prediction, Prediction)
    assert (prediction.model, prediction.version, prediction.rows) == ("linear", 1, 5)
    assert prediction.model_s > 0 and prediction.queue_s >= 0
    assert close_to(prediction, 1, x)
    assert close_to(sync(runtime, "linear", {"x": x}), 1, x)

    status = runtime.status()["linear"]
    assert status["state"] == "ready"
    assert (status["model"], status["version"]) == ("linear", 1)
    assert status["requests"] == 2 and status["failed"] == 0
    assert status["batches"] == 2 and status["rows"] == 10  # one model call per request without batching
    assert status["queue_depth"] == 0 and status["in_flight"] == 0
    # The warm-up ran one generated row through the model before it served anything.
    assert sources.loaded[0].calls[0] == 1

    runtime.undeploy("linear")
    assert not runtime.ready("linear")
    assert sources.loaded[0].closed
    assert runtime.status() == {}
    for call in (lambda: sync(runtime, "linear", {"x": x}),
                 lambda: asyncio.run(runtime.predict("linear", {"x": x})), lambda: runtime.undeploy("linear")):
        with pytest.raises(errors.NotFound, match="'linear'"):
            call()


def test_device_and_deployment_options_reach_the_loader(sources) -> None:
    rt = LocalRuntime(LocalRuntimeConfig(threads=1, device="cuda:1"), loader=sources)
    try:
        rt.deploy(deployment(options={"intra_op_threads": 2}), sources(1))
        rt.deploy(deployment("other", options={"device": "cpu"}), sources(1))
    finally:
        rt.close()
    assert sources.loads[0][1] == {"device": "cuda:1", "intra_op_threads": 2}
    assert sources.loads[1][1] == {"device": "cpu"}  # a deployment may override the runtime's device


def test_several_deployments_side_by_side(runtime, sources, sync) -> None:
    runtime.deploy(deployment("a", 1), sources(1))
    runtime.deploy(deployment("b", 2), sources(2))
    x = rows(3)
    assert close_to(sync(runtime, "a", {"x": x}), 1, x)
    assert close_to(sync(runtime, "b", {"x": x}), 2, x)
    assert set(runtime.status()) == {"a", "b"}


def test_inputs_are_checked_once_against_the_served_version(runtime, sources, sync) -> None:
    # The signature check happens in the runtime, before the request reaches the model or a batch.
    runtime.deploy(deployment(), sources(1))
    with pytest.raises(errors.InvalidInput, match=r"input 'x': expected shape \[-1, 20\]"):
        sync(runtime, "linear", {"x": np.zeros((2, FEATURES + 1), np.float32)})  # wrong width
    with pytest.raises(errors.InvalidInput, match="unknown input 'z'"):
        asyncio.run(runtime.predict("linear", {"z": np.zeros((2, FEATURES), np.float32)}))
    with pytest.raises(errors.InvalidInput, match="beyond the range of FP32"):
        sync(runtime, "linear", {"x": np.full((1, FEATURES), 1e300)})  # FP64 that would become inf
    assert sources.loaded[0].calls == [1]  # only the warm-up: nothing bad reached the model
    x = rows(2)
    converted = sync(runtime, "linear", {"x": x.astype(np.float64)})  # lossless in kind: converted
    assert close_to(converted, 1, x) and converted["y"].dtype == np.float32
    assert close_to(sync(runtime, "linear", {"x": x.tolist()}), 1, x)


def test_model_errors_reach_the_caller_and_are_counted(runtime, sources, sync) -> None:
    runtime.deploy(deployment(), sources(1))
    sources.loaded[0].fail = True  # after the warm-up
    with pytest.raises(ValueError, match="cannot predict"):
        sync(runtime, "linear", {"x": rows(2)})
    with pytest.raises(ValueError, match="cannot predict"):
        asyncio.run(runtime.predict("linear", {"x": rows(2)}))
    assert runtime.status()["linear"]["failed"] == 2
    sources.loaded[0].fail = False
    x = rows(1)
    assert close_to(sync(runtime, "linear", {"x": x}), 1, x)  # still serving


def test_provider_and_config_schema() -> None:
    (provider,) = modelyard_runtimes()
    assert provider.name == "local" and provider.slot == "runtime"
    assert provider.config_schema is LocalRuntimeConfig
    config, issues = structure({"threads": 2, "memory_budget_mb": 64, "device": "cuda"}, LocalRuntimeConfig,
                               section="runtime", lines={}, file=None)
    assert not issues and config.threads == 2 and config.max_concurrency is None
    _, issues = structure({"max_queue": "many", "colour": 1}, LocalRuntimeConfig,
                          section="runtime", lines={}, file=None)
    assert {i.key for i in issues} == {"max_queue", "colour"}
    _, issues = structure({"threads": 0}, LocalRuntimeConfig, section="runtime", lines={}, file=None)
    assert len(issues) == 1 and "threads" in issues[0].message and ">= 1" in issues[0].message


# --------------------------------------------------------------------------------------------- batching
def test_batching_merges_concurrent_requests(runtime, sources) -> None:
    runtime.deploy(deployment(batching=BatchingConfig(max_batch_size=16, max_wait_ms=50)), sources(1))
    model = sources.loaded[0]
    inputs = [rows(1 + i % 3, seed=i) for i in range(24)]

    async def main():
        return await asyncio.gather(*(runtime.predict("linear", {"x": x}) for x in inputs))

    for x, out in zip(inputs, asyncio.run(main()), strict=True):
        assert close_to(out, 1, x) and out.rows == len(x) and out.version == 1
    served = model.calls[1:]  # after the warm-up
    assert sum(served) == sum(len(x) for x in inputs)
    assert len(served) < len(inputs) / 2, served  # requests were merged
    assert max(served) <= 16 + 2
    status = runtime.status()["linear"]
    assert status["requests"] == 24 and status["batches"] == len(served)


def test_sync_callers_share_batches(runtime, sources, sync) -> None:
    runtime.deploy(deployment(batching=BatchingConfig(max_batch_size=8, max_wait_ms=100)), sources(1))
    model = sources.loaded[0]
    results: dict[int, dict] = {}
    barrier = threading.Barrier(8)

    def call(i: int) -> None:
        barrier.wait()
        results[i] = sync(runtime, "linear", {"x": rows(1, seed=i)})  # each thread on its own event loop

    threads = [threading.Thread(daemon=True, target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        assert close_to(results[i], 1, rows(1, seed=i))
    assert len(model.calls) - 1 < 8  # fewer model calls than requests


def test_sync_predict_inside_an_event_loop_still_answers(runtime, sources, sync) -> None:
    runtime.deploy(deployment(batching=BatchingConfig(max_batch_size=8, max_wait_ms=1)), sources(1))

    async def main():
        await runtime.predict("linear", {"x": rows(1)})  # this loop has used the batcher too
        x = rows(2)
        return x, sync(runtime, "linear", {"x": x})  # blocks this loop, but is served from another

    x, out = asyncio.run(main())
    assert close_to(out, 1, x)


# --------------------------------------------------------------------------------------------- back-pressure
def test_overloaded_when_the_queue_is_full(sources) -> None:
    gate = threading.Event()
    rt = LocalRuntime(LocalRuntimeConfig(threads=2, max_queue=2, max_concurrency=1), loader=sources)
    try:
        rt.deploy(deployment(), sources(1))
        sources.loaded[0].gate = gate  # after the warm-up

        async def main():
            tasks = [asyncio.ensure_future(rt.predict("linear", {"x": rows(1, seed=i)})) for i in range(3)]
            await asyncio.sleep(0.05)  # one running, two waiting
            with pytest.raises(errors.Overloaded) as info:
                await rt.predict("linear", {"x": rows(1)})
            status = rt.status()["linear"]
            gate.set()
            return info.value, status, await asyncio.gather(*tasks)

        exc, status, results = asyncio.run(main())
    finally:
        gate.set()
        rt.close()
    assert exc.status == 429 and exc.retry_after > 0 and "linear" in str(exc)
    assert status["in_flight"] == 1 and status["queue_depth"] == 2 and status["rejected"] == 1
    for i, out in enumerate(results):
        assert close_to(out, 1, rows(1, seed=i))


def test_sync_path_keeps_the_same_limits(sources, sync) -> None:
    gate = threading.Event()
    rt = LocalRuntime(LocalRuntimeConfig(threads=2, max_queue=1, max_concurrency=1), loader=sources)
    try:
        rt.deploy(deployment(), sources(1))
        model = sources.loaded[0]
        model.gate = gate
        threads = [threading.Thread(daemon=True, target=sync, args=(rt, "linear", {"x": rows(1)})) for _ in range(2)]
        for t in threads:
            t.start()
        wait_until(lambda: rt.status()["linear"]["queue_depth"] == 1 and rt.status()["linear"]["in_flight"] == 1)
        with pytest.raises(errors.Overloaded):
            sync(rt, "linear", {"x": rows(1)})
        assert model.calls.count(1) == 2  # warm-up + the one running: the waiter has not run yet
        gate.set()
        for t in threads:
            t.join()
        assert rt.status()["linear"]["rejected"] == 1
    finally:
        gate.set()
        rt.close()


# --------------------------------------------------------------------------------------------- redeploy
@pytest.mark.parametrize("batching", [None, BatchingConfig(max_batch_size=4, max_wait_ms=1)])
def test_redeploy_serves_without_a_single_failed_request(runtime, sources, sync, batching) -> None:
    # The old version is slow, so requests are in flight on it when the swap happens.
    runtime.deploy(deployment(batching=batching), sources(1, sleep=0.003))
    stop = threading.Event()
    swapped = threading.Event()
    failures: list[BaseException] = []
    seen: list[tuple[bool, int]] = []  # (request started after deploy returned, version answered)
    x = rows(2)
    v1, v2 = expected(1, x), expected(2, x)

    def version_of(prediction: Prediction) -> int:
        # The outputs show which version computed them; the prediction must say the same.
        out = prediction.outputs
        if np.allclose(out["y"], v1, rtol=1e-4, atol=1e-3):
            computed = 1
        else:
            computed = 2 if np.allclose(out["y"], v2, rtol=1e-4, atol=1e-3) else 0
        return computed if computed == prediction.version else -1

    stop_sync = threading.Event()

    def hammer_sync() -> None:
        while not stop_sync.is_set():
            after = swapped.is_set()
            try:
                seen.append((after, version_of(sync.bridge.run(runtime.predict, "linear", {"x": x}))))
            except BaseException as exc:
                failures.append(exc)

    def hammer_async() -> None:
        async def main():
            while not stop.is_set():
                after = swapped.is_set()
                try:
                    seen.append((after, version_of(await runtime.predict("linear", {"x": x}))))
                except BaseException as exc:
                    failures.append(exc)
                await asyncio.sleep(0)

        asyncio.run(main())

    threads = [threading.Thread(daemon=True, target=hammer_sync), threading.Thread(daemon=True, target=hammer_sync),
               threading.Thread(daemon=True, target=hammer_async)]
    for t in threads:
        t.start()
    wait_until(lambda: len(seen) > 20)
    runtime.deploy(deployment(version=2, batching=batching), sources(2, load_delay=0.2))
    swapped.set()
    n = len(seen)
    wait_until(lambda: len(seen) > n + 20)
    stop_sync.set()
    for t in threads[:2]:
        t.join()
    stop.set()
    threads[2].join()

    assert failures == []
    assert {v for _, v in seen} == {1, 2}
    assert {v for after, v in seen if after} == {2}  # once deploy returned, only the new version answers
    assert version_served(runtime, "linear") == 2
    old, new = sources.loaded
    assert old.closed and not new.closed


class _StaleFirst(dict):
    """The runtime's entry table, except that the first lookup hands out a stale entry: a caller that looked the
    deployment up just before a swap."""

    def __init__(self, entries, stale):
        super().__init__(entries)
        self.stale = stale
        self.handed = False

    def get(self, key, default=None):
        if not self.handed:
            self.handed = True
            return self.stale
        return super().get(key, default)


def test_requests_holding_a_replaced_deployment_are_retried_on_the_new_one(runtime, sources, sync) -> None:
    # White-box: a caller that looked the deployment up just before the swap reaches the old entry only after
    # it was drained and closed. It must be served by the new version (and checked against it), not fail.
    runtime.deploy(deployment(), sources(1))
    stale = runtime._entries["linear"]
    runtime.deploy(deployment(version=2), sources(2))
    assert stale.retired and stale.dispatcher.closed
    x = rows(2)
    runtime._entries = _StaleFirst(runtime._entries, stale)
    assert close_to(sync(runtime, "linear", {"x": x}), 2, x)
    runtime._entries.handed = False
    prediction = asyncio.run(runtime.predict("linear", {"x": x}))
    assert close_to(prediction, 2, x) and prediction.version == 2
    runtime._entries.handed = False
    runtime.undeploy("linear")
    with pytest.raises(errors.NotFound):  # removed meanwhile: the retry finds nothing
        sync(runtime, "linear", {"x": x})


def test_a_batch_outlives_the_event_loop_that_opened_it(runtime, sources, sync) -> None:
    # Callers on several loops share one batch. When the loop that opened it ends (asyncio.run returns, which
    # cancels its request) the others' requests are still flushed and answered, by a timer on their own loop.
    runtime.deploy(deployment(batching=BatchingConfig(max_batch_size=8, max_wait_ms=300, wait_when_idle=True)),
                   sources(1))
    opened = threading.Event()
    release = threading.Event()

    left: list = []

    def owner() -> None:
        async def main():
            left.append(asyncio.ensure_future(runtime.predict("linear", {"x": rows(1, seed=9)})))  # never awaited
            await asyncio.sleep(0.01)
            opened.set()
            while not release.is_set():
                await asyncio.sleep(0.005)

        asyncio.run(main())

    loop_thread = threading.Thread(daemon=True, target=owner)
    loop_thread.start()
    assert opened.wait(5)
    x = rows(2)
    result: list = []
    caller = threading.Thread(daemon=True, target=lambda: result.append(sync(runtime, "linear", {"x": x})))
    caller.start()
    wait_until(lambda: runtime.status()["linear"]["queue_depth"] == 2)  # both in the batch the owner opened
    release.set()
    loop_thread.join()
    caller.join(10)
    assert not caller.is_alive()
    assert close_to(result[0], 1, x)
    assert sources.loaded[0].calls[1:] == [2]  # the owner's withdrawn row was never computed
    assert runtime.status()["linear"]["queue_depth"] == 0


def test_failing_load_leaves_the_old_version_serving(runtime, sources, sync) -> None:
    runtime.deploy(deployment(), sources(1))
    x = rows(2)
    with pytest.raises(errors.BuildError, match=r"linear:2.*OSError: corrupt"):
        runtime.deploy(deployment(version=2), sources(2, load_error=OSError("corrupt")))
    with pytest.raises(errors.BuildError, match="warm-up"):
        runtime.deploy(deployment(version=2), sources(2, fail=True))
    with pytest.raises(errors.Unavailable, match="cannot fetch"):
        runtime.deploy(deployment(version=2), sources(2, fetch_error=ConnectionError("s3 down")))
    with pytest.raises(errors.IntegrityError):  # modelyard errors pass through unchanged
        runtime.deploy(deployment(version=2), sources(2, load_error=errors.IntegrityError("digest mismatch")))
    assert version_served(runtime, "linear") == 1
    assert close_to(sync(runtime, "linear", {"x": x}), 1, x)
    assert sources.loaded[1].closed  # the model that failed its warm-up was closed again
    # A failed first deploy leaves nothing behind.
    with pytest.raises(errors.BuildError):
        runtime.deploy(deployment("fresh"), sources(1, load_error=RuntimeError("nope")))
    assert not runtime.ready("fresh")


def test_redeploy_from_inside_an_event_loop(runtime, sources) -> None:
    async def main():
        runtime.deploy(deployment(), sources(1))
        x = rows(1)
        await runtime.predict("linear", {"x": x})
        runtime.deploy(deployment(version=2), sources(2))  # retired from a helper thread: this loop keeps going
        return x, await runtime.predict("linear", {"x": x})

    x, out = asyncio.run(main())
    assert close_to(out, 2, x)
    wait_until(lambda: sources.loaded[0].closed)


# --------------------------------------------------------------------------------------------- memory budget
def test_lru_unload_and_lazy_reload_under_a_memory_budget(sources, sync) -> None:
    mib = 1024 * 1024
    rt = LocalRuntime(LocalRuntimeConfig(threads=2, memory_budget_mb=2), loader=sources)
    try:
        rt.deploy(deployment("a"), sources(1, size=mib))
        rt.deploy(deployment("b", 2), sources(2, size=mib))
        x = rows(2)
        sync(rt, "a", {"x": x})  # a is now more recently used than b
        rt.deploy(deployment("c"), sources(1, size=mib))
        status = rt.status()
        assert status["b"]["state"] == "unloaded" and status["a"]["state"] == "ready"
        assert status["c"]["state"] == "ready"
        assert sources.loaded[1].closed
        assert rt.ready("b")  # still deployed: it loads on demand

        assert close_to(asyncio.run(rt.predict("b", {"x": x})), 2, x)  # lazy reload
        status = rt.status()
        assert status["b"]["state"] == "ready" and status["b"]["loads"] == 2
        assert status["a"]["state"] == "unloaded"  # least recently used of the rest
        assert close_to(sync(rt, "a", {"x": x}), 1, x)
        assert [s["state"] for s in rt.status().values()].count("ready") == 2
        loaded = [m for m in sources.loaded if not m.closed]
        assert len(loaded) == 2
    finally:
        rt.close()
    assert all(m.closed for m in sources.loaded)


def test_busy_models_are_never_unloaded(sources, sync) -> None:
    mib = 1024 * 1024
    gate = threading.Event()
    rt = LocalRuntime(LocalRuntimeConfig(threads=2, memory_budget_mb=1), loader=sources)
    try:
        rt.deploy(deployment("a"), sources(1, size=mib))
        busy = sources.loaded[0]
        busy.gate = gate
        worker = threading.Thread(daemon=True, target=sync, args=(rt, "a", {"x": rows(1)}))
        worker.start()
        wait_until(lambda: rt.status()["a"]["in_flight"] == 1)
        rt.deploy(deployment("b"), sources(1, size=mib))  # over budget, but a is busy: both stay loaded
        assert not busy.closed and rt.status()["a"]["state"] == "ready"
        gate.set()
        worker.join()
    finally:
        gate.set()
        rt.close()


def test_concurrent_lazy_reloads_load_once(sources) -> None:
    mib = 1024 * 1024
    rt = LocalRuntime(LocalRuntimeConfig(threads=4, memory_budget_mb=1), loader=sources)
    try:
        rt.deploy(deployment("a"), sources(1, size=mib))
        rt.deploy(deployment("b", 2), sources(2, size=mib))
        assert rt.status()["a"]["state"] == "unloaded"
        x = rows(1)

        async def main():
            return await asyncio.gather(*(rt.predict("a", {"x": x}) for _ in range(8)))

        for out in asyncio.run(main()):
            assert close_to(out, 1, x)
        assert rt.status()["a"]["loads"] == 2
    finally:
        rt.close()


# --------------------------------------------------------------------------------------------- close
def test_close_drains_and_refuses_new_work(sources, sync) -> None:
    rt = LocalRuntime(LocalRuntimeConfig(threads=2), loader=sources)
    rt.deploy(deployment(batching=BatchingConfig(max_batch_size=4, max_wait_ms=200, wait_when_idle=True)), sources(1))
    x = rows(1)
    result: list = []
    t = threading.Thread(daemon=True, target=lambda: result.append(sync(rt, "linear", {"x": x})))
    t.start()
    wait_until(lambda: rt.status().get("linear", {}).get("queue_depth") == 1)
    started = time.monotonic()
    rt.close()
    t.join()
    assert close_to(result[0], 1, x)  # the queued request was flushed, not dropped
    assert time.monotonic() - started < 0.2 + 1.0
    assert sources.loaded[0].closed
    with pytest.raises(errors.Unavailable):
        rt.deploy(deployment(), sources(1))
    rt.close()  # idempotent

