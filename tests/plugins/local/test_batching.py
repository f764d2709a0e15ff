"""Tests for the local runtime's request scheduling: dynamic batching, bounded queues, concurrency limits, and
callers on several event loops at once."""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelyard import errors
from modelyard_plugins.local.batching import (
    BatchingDispatcher,
    DirectDispatcher,
    DispatcherClosed,
    DispatcherStats,
    Overloaded,
)

# One executor for the whole module, like the runtime's shared one (hypothesis dislikes function fixtures).
EXECUTOR = ThreadPoolExecutor(max_workers=8, thread_name_prefix="test-batching")


class Model:
    """``y = x * 2 + 1`` and a per-row sum, recording the row count of every call and the peak concurrency."""

    def __init__(self, *, sleep: float = 0.0, gate: threading.Event | None = None) -> None:
        self.sleep = sleep
        self.gate = gate
        self.calls: list[int] = []
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, inputs):
        with self.lock:
            self.calls.append(len(inputs["x"]))
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            if self.gate is not None:
                assert self.gate.wait(10), "test gate never opened"
            if self.sleep:
                time.sleep(self.sleep)
            x = inputs["x"]
            if (x == -1).any():
                raise ArithmeticError("boom")
            return {"y": x * 2 + 1, "s": x.reshape(len(x), -1).sum(axis=1)}
        finally:
            with self.lock:
                self.active -= 1


def rows_of(start: int, rows: int, width: int = 3, dtype=np.float64) -> dict[str, np.ndarray]:
    """Unique values per request, so any misrouted row shows."""
    return {"x": np.arange(start, start + rows * width, dtype=dtype).reshape(rows, width)}


def check(inputs, answer) -> None:
    """``answer`` is what ``submit`` returns: (outputs, seconds of the model call)."""
    outputs, model_s = answer
    assert model_s >= 0
    x = inputs["x"]
    np.testing.assert_array_equal(outputs["y"], x * 2 + 1)
    np.testing.assert_array_equal(outputs["s"], x.reshape(len(x), -1).sum(axis=1))
    assert outputs["y"].dtype == x.dtype


async def settle() -> None:
    """Let already-scheduled callbacks and tasks run."""
    for _ in range(5):
        await asyncio.sleep(0)


async def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


# --------------------------------------------------------------------------------------------- properties
@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 12))
    requests = [
        (
            draw(st.integers(1, 5)),  # rows
            draw(st.floats(0, 6)),  # arrival delay, ms
            draw(st.sampled_from([2, 3])),  # width: a second layout that must batch separately
            draw(st.sampled_from([np.float64, np.int64])),
        )
        for _ in range(n)
    ]
    config = {
        "max_batch_size": draw(st.integers(1, 8)),
        "max_wait_ms": draw(st.sampled_from([0, 0.5, 2.0, 5.0])),
        "max_concurrency": draw(st.integers(1, 3)),
    }
    return requests, config


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_caller_gets_exactly_its_rows(scenario) -> None:
    requests, config = scenario
    model = Model()
    dispatcher = BatchingDispatcher(model, EXECUTOR, deployment="prop", max_queue=1000, **config)
    inputs, start = [], 0
    for rows, _, width, dtype in requests:
        inputs.append(rows_of(start, rows, width, dtype))
        start += rows * width

    async def one(i: int):
        await asyncio.sleep(requests[i][1] / 1000)
        return await dispatcher.submit(inputs[i])

    async def main():
        results = await asyncio.gather(*(one(i) for i in range(len(requests))))
        await dispatcher.close()
        return results

    results = asyncio.run(main())
    for given_inputs, outputs in zip(inputs, results, strict=True):
        check(given_inputs, outputs)

    limit = config["max_batch_size"]
    oversized = sorted(rows for rows, *_ in requests if rows > limit)
    assert len(model.calls) <= len(requests)
    # Calls over the limit are exactly the oversized requests, each alone.
    assert sorted(c for c in model.calls if c > limit) == oversized
    assert sum(model.calls) == sum(rows for rows, *_ in requests)
    stats = dispatcher.stats()
    assert (stats.requests, stats.batches, stats.rows) == (len(requests), len(model.calls), sum(model.calls))
    assert (stats.queue_depth, stats.in_flight, stats.failed) == (0, 0, 0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scenarios(),
    st.lists(st.tuples(st.booleans(), st.floats(0, 8)), min_size=12, max_size=12),
    st.floats(0, 2),
)
def test_cancelled_callers_never_disturb_the_others(scenario, cancels, model_ms) -> None:
    requests, config = scenario
    model = Model(sleep=model_ms / 1000)
    dispatcher = BatchingDispatcher(model, EXECUTOR, max_queue=1000, **config)
    inputs, start = [], 0
    for rows, _, width, dtype in requests:
        inputs.append(rows_of(start, rows, width, dtype))
        start += rows * width

    async def one(i: int):
        await asyncio.sleep(requests[i][1] / 1000)
        return await dispatcher.submit(inputs[i])

    async def main():
        tasks = [asyncio.ensure_future(one(i)) for i in range(len(requests))]

        async def cancel(i: int, after_ms: float) -> None:
            await asyncio.sleep(after_ms / 1000)
            tasks[i].cancel()

        await asyncio.gather(*(cancel(i, ms) for i, (yes, ms) in enumerate(cancels[: len(tasks)]) if yes))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.wait_for(dispatcher.close(), 5)
        return results

    for given_inputs, outcome in zip(inputs, asyncio.run(main()), strict=True):
        if not isinstance(outcome, asyncio.CancelledError):
            check(given_inputs, outcome)
    assert (dispatcher.queue_depth, dispatcher.in_flight) == (0, 0)
    assert all(c <= config["max_batch_size"] or c in [r for r, *_ in requests] for c in model.calls)


# --------------------------------------------------------------------------------------------- merging
def test_concurrent_requests_are_merged() -> None:
    model = Model()
    dispatcher = BatchingDispatcher(model, EXECUTOR, max_batch_size=32, max_wait_ms=50)
    inputs = [rows_of(i * 3, 1) for i in range(32)]

    async def main():
        return await asyncio.gather(*(dispatcher.submit(x) for x in inputs))

    for x, out in zip(inputs, asyncio.run(main()), strict=True):
        check(x, out)
    assert len(model.calls) <= 3
    assert sum(model.calls) == 32


def test_full_batch_does_not_wait_for_the_timer() -> None:
    model = Model()
    dispatcher = BatchingDispatcher(model, EXECUTOR, max_batch_size=4, max_wait_ms=10_000)

    async def main():
        return await asyncio.wait_for(
            asyncio.gather(*(dispatcher.submit(rows_of(i, 1)) for i in range(8))), 5
        )

    asyncio.run(main())
    assert model.calls == [4, 4]


def test_zero_wait_still_merges_what_queued_in_one_iteration() -> None:
    model = Model()
    dispatcher = BatchingDispatcher(model, EXECUTOR, max_batch_size=64, max_wait_ms=0)

    async def main():
        return await asyncio.gather(*(dispatcher.submit(rows_of(i * 3, 1)) for i in range(10)))

    for i, out in enumerate(asyncio.run(main())):
        check(rows_of(i * 3, 1), out)
    assert model.calls == [10]


def test_busy_model_gets_full_batches() -> None:
    # While the only slot is busy, due batches keep absorbing requests up to max_batch_size.
    gate = threading.Event()
    model = Model(gate=gate)
    dispatcher = BatchingDispatcher(model, EXECUTOR, max_batch_size=8, max_wait_ms=0, max_concurrency=1)

    async def main():
        first = asyncio.ensure_future(dispatcher.submit(rows_of(0, 1)))
        await wait_until(lambda: dispatcher.in_flight == 1)
        rest = []
        for i in range(1, 17):
            rest.append(asyncio.ensure_future(dispatcher.submit(rows_of(i * 3, 1))))
            await settle()  # every request arrives in its own loop iteration
        assert dispatcher.queue_depth == 16
        gate.set()
        return await asyncio.gather(first, *rest)

    for i, out in enumerate(asyncio.run(main())):
        check(rows_of(i * 3, 1), out)
    assert model.calls == [1, 8, 8]


def test_batching_throughput_beats_direct() -> None:
    # The one timing assertion: with a 20 ms model the batcher should serve 64 callers in a couple of calls,
    # the direct path needs 64 / 4 = 16 rounds. Expect ~8x or more; assert 3x.
    workers = 4
    executor = ThreadPoolExecutor(max_workers=workers)
    callers, rounds = 64, 3

    def slow(inputs):
        time.sleep(0.02)  # releases the GIL, like onnxruntime
        return {"y": inputs["x"] * 2 + 1}

    def measure(dispatcher) -> float:
        async def main():
            await dispatcher.submit(rows_of(0, 1))  # warm up the threads
            start = time.perf_counter()
            for _ in range(rounds):
                outs = await asyncio.gather(*(dispatcher.submit(rows_of(i * 3, 1)) for i in range(callers)))
                for i, (out, _) in enumerate(outs):
                    np.testing.assert_array_equal(out["y"], rows_of(i * 3, 1)["x"] * 2 + 1)
            return callers * rounds / (time.perf_counter() - start)

        return asyncio.run(main())

    try:
        direct = measure(DirectDispatcher(slow, executor, max_concurrency=workers, max_queue=callers))
        batched = measure(
            BatchingDispatcher(slow, executor, max_batch_size=64, max_wait_ms=5, max_concurrency=workers)
        )
    finally:
        executor.shutdown()
    print(f"\nthroughput: direct {direct:.0f} req/s, batched {batched:.0f} req/s, {batched / direct:.1f}x")
    assert batched >= 3 * direct


# --------------------------------------------------------------------------------------------- back-pressure
def test_overloaded_when_the_batch_queue_is_full() -> None:
    gate = threading.Event()
    model = Model(gate=gate)
    dispatcher = BatchingDispatcher(
        model, EXECUTOR, deployment="busy", max_batch_size=1, max_wait_ms=0, max_queue=2, max_concurrency=1
    )

    async def main():
        running = asyncio.ensure_future(dispatcher.submit(rows_of(0, 1)))
        await wait_until(lambda: dispatcher.in_flight == 1)
        queued = [asyncio.ensure_future(dispatcher.submit(rows_of(i * 3, 1))) for i in (1, 2)]
        await settle()
        assert dispatcher.queue_depth == 2
        with pytest.raises(Overloaded) as info:
            # Never blocks: it raises before the first await that could suspend.
            await asyncio.wait_for(dispatcher.submit(rows_of(9, 1)), 0.5)
        gate.set()
        results = await asyncio.gather(running, *queued)
        return info.value, results

    exc, results = asyncio.run(main())
    assert 0.05 <= exc.retry_after <= 30
    assert "busy" in str(exc) and exc.deployment == "busy" and exc.queue_depth == 2
    assert isinstance(exc, errors.Overloaded) and exc.status == 429
    assert pickle.loads(pickle.dumps(exc)).retry_after == exc.retry_after
    for i, out in zip((0, 1, 2), results, strict=True):
        check(rows_of(i * 3, 1), out)
    assert dispatcher.rejected == 1


def test_retry_after_follows_the_service_time() -> None:
    slow_gate = threading.Event()
    calls = {"n": 0}

    def model(inputs):
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(0.2)
        else:
            assert slow_gate.wait(10)
        return {"y": inputs["x"]}

    dispatcher = BatchingDispatcher(model, EXECUTOR, max_batch_size=1, max_wait_ms=0, max_queue=2)

    async def main():
        await dispatcher.submit(rows_of(0, 1))  # one 0.2 s call
        running = [asyncio.ensure_future(dispatcher.submit(rows_of(0, 1))) for _ in range(3)]
        await settle()
        with pytest.raises(Overloaded) as info:
            await dispatcher.submit(rows_of(0, 1))
        slow_gate.set()
        await asyncio.gather(*running)
        return info.value.retry_after

    # Two single-row batches queued behind a 0.2 s model: about 0.6 s.
    assert 0.3 <= asyncio.run(main()) <= 1.5


def test_direct_dispatcher_limits_concurrency_and_queue() -> None:
    gate = threading.Event()
    model = Model(gate=gate)
    dispatcher = DirectDispatcher(model, EXECUTOR, deployment="direct", max_concurrency=3, max_queue=5)

    async def main():
        tasks = [asyncio.ensure_future(dispatcher.submit(rows_of(i * 3, 1))) for i in range(8)]
        await wait_until(lambda: model.active == 3)
        assert (dispatcher.in_flight, dispatcher.queue_depth) == (3, 5)
        with pytest.raises(Overloaded) as info:
            await dispatcher.submit(rows_of(0, 1))
        gate.set()
        return info.value, await asyncio.gather(*tasks)

    exc, results = asyncio.run(main())
    assert exc.retry_after > 0 and "direct" in str(exc)
    for i, out in enumerate(results):
        check(rows_of(i * 3, 1), out)
    assert model.peak == 3
    assert dispatcher.stats() == DispatcherStats(
        queue_depth=0, in_flight=0, requests=8, batches=8, rows=8, rejected=1, failed=0
    )


def test_direct_dispatcher_without_a_queue_rejects_beyond_concurrency() -> None:
    gate = threading.Event()
    dispatcher = DirectDispatcher(Model(gate=gate), EXECUTOR, max_concurrency=1, max_queue=0)

    async def main():
        first = asyncio.ensure_future(dispatcher.submit(rows_of(0, 1)))
        await settle()
        with pytest.raises(Overloaded):
            await dispatcher.submit(rows_of(0, 1))
        gate.set()
        await first

    asyncio.run(main())


# --------------------------------------------------------------------------------------------- failures
def test_model_exception_reaches_every_caller_of_the_batch() -> None:
    model = Model()
    dispatcher = BatchingDispatcher(model, EXECUTOR, max_batch_size=8, max_wait_ms=20)

    async def main():
        bad = [dispatcher.submit(rows_of(i * 3, 1)) for i in range(3)] + [
            dispatcher.submit({"x": -np.ones((1, 3))})
        ]
        failures = await asyncio.gather(*bad, return_exceptions=True)
        after = await dispatcher.submit(rows_of(100, 2))
        return failures, after

    failures, after = asyncio.run(main())
    assert model.calls == [4, 2]
    assert all(isinstance(f, ArithmeticError) and str(f) == "boom" for f in failures)
    check(rows_of(100, 2), after)
    assert dispatcher.failed == 4 and dispatcher.in_flight == 0


@pytest.mark.parametrize("callers", [1, 3])
def test_model_returning_wrong_row_count_is_an_error(callers: int) -> None:
    def model(inputs):
        return {"y": inputs["x"][:-1]}

    dispatcher = BatchingDispatcher(model, EXECUTOR, deployment="short", max_batch_size=8, max_wait_ms=10)

    async def main():
        return await asyncio.gather(
            *(dispatcher.submit(rows_of(i * 3, 2)) for i in range(callers)), return_exceptions=True
        )

    for result in asyncio.run(main()):
        assert isinstance(result, ValueError)
        assert "short" in str(result) and "rows" in str(result)


def test_model_returning_a_non_mapping_is_an_error() -> None:
    dispatcher = BatchingDispatcher(lambda inputs: inputs["x"], EXECUTOR, deployment="bare")
    with pytest.raises(TypeError, match="bare"):
        asyncio.run(dispatcher.submit(rows_of(0, 1)))


def test_direct_dispatcher_propagates_model_errors_and_recovers() -> None:
    dispatcher = DirectDispatcher(Model(), EXECUTOR, max_concurrency=1)

    async def main():
        with pytest.raises(ArithmeticError):
            await dispatcher.submit({"x": -np.ones((1, 3))})
        return await dispatcher.submit(rows_of(0, 1))

    check(rows_of(0, 1), asyncio.run(main()))
    assert dispatcher.failed == 1 and dispatcher.in_flight == 0


def test_invalid_inputs_are_rejected_before_queueing() -> None:
    dispatcher = BatchingDispatcher(Model(), EXECUTOR, deployment="inputs")

    async def main():
        with pytest.raises(errors.InvalidInput, match="scalar"):
            await dispatcher.submit({"x": np.float64(1.0)})
        with pytest.raises(errors.InvalidInput, match="rows"):
            await dispatcher.submit({"x": np.zeros((2, 3)), "z": np.zeros((3, 3))})
        with pytest.raises(errors.InvalidInput, match="no inputs"):
            await dispatcher.submit({})
        # Lists are accepted and converted.
        return await dispatcher.submit({"x": [[1.0, 2.0, 3.0]]})

    check(rows_of(1, 1), asyncio.run(main()))
    assert dispatcher.queue_depth == 0


def test_heterogeneous_requests_are_batched_separately() -> None:
    calls = []

    def model(inputs):
        calls.append({k: (v.dtype, v.shape) for k, v in inputs.items()})
        return {"y": inputs["x"] * 2 + 1, "n": np.full(len(inputs["x"]), len(inputs))}

    dispatcher = BatchingDispatcher(model, EXECUTOR, max_batch_size=32, max_wait_ms=20)
    kinds = [
        lambda i: {"x": np.full((1, 3), i, np.float64)},
        lambda i: {"x": np.full((1, 4), i, np.float64)},  # other width
        lambda i: {"x": np.full((1, 3), i, np.float32)},  # other dtype
        lambda i: {"x": np.full((2, 3), i, np.float64), "z": np.zeros((2,))},  # other input names
    ]
    inputs = [kinds[i % 4](i) for i in range(20)]

    async def main():
        return await asyncio.gather(*(dispatcher.submit(x) for x in inputs))

    for x, (out, _) in zip(inputs, asyncio.run(main()), strict=True):
        np.testing.assert_array_equal(out["y"], x["x"] * 2 + 1)
        assert out["y"].dtype == x["x"].dtype
        assert (out["n"] == len(x)).all()
    assert len(calls) == 4
    assert sorted(c["x"][1][0] for c in calls) == [5, 5, 5, 10]


# --------------------------------------------------------------------------------------------- cancellation
def test_cancelled_caller_before_dispatch_is_withdrawn() -> None:
    model = Model()
    dispatcher = BatchingDispatcher(model, EXECUTOR, max_batch_size=8, max_wait_ms=50, wait_when_idle=True)

    async def main():
        tasks = [asyncio.ensure_future(dispatcher.submit(rows_of(i * 3, i + 1))) for i in range(3)]
        await settle()
        assert dispatcher.queue_depth == 3
        tasks[1].cancel()
        await settle()
        assert dispatcher.queue_depth == 2
        done = await asyncio.gather(*tasks, return_exceptions=True)
        return done

    results = asyncio.run(main())
    assert isinstance(results[1], asyncio.CancelledError)
    check(rows_of(0, 1), results[0])
    check(rows_of(6, 3), results[2])
    assert model.calls == [4]  # the cancelled caller's 2 rows were never computed
    assert dispatcher.queue_depth == 0


def test_cancelled_caller_during_the_call_does_not_break_the_batch() -> None:
    gate = threading.Event()
    model = Model(gate=gate)
    dispatcher = BatchingDispatcher(model, EXECUTOR, max_batch_size=3, max_wait_ms=50)

    async def main():
        tasks = [asyncio.ensure_future(dispatcher.submit(rows_of(i * 3, 1))) for i in range(3)]
        await wait_until(lambda: model.active == 1)
        tasks[0].cancel()
        await settle()
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        again = await dispatcher.submit(rows_of(50, 1))
        return results, again

    results, again = asyncio.run(main())
    assert isinstance(results[0], asyncio.CancelledError)
    check(rows_of(3, 1), results[1])
    check(rows_of(6, 1), results[2])
    check(rows_of(50, 1), again)
    assert dispatcher.stats().in_flight == 0


def test_batch_of_only_cancelled_callers_is_never_run() -> None:
    model = Model()
    dispatcher = BatchingDispatcher(model, EXECUTOR, max_batch_size=8, max_wait_ms=5, wait_when_idle=True)

    async def main():
        tasks = [asyncio.ensure_future(dispatcher.submit(rows_of(i * 3, 1))) for i in range(2)]
        await settle()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.02)

    asyncio.run(main())
    assert model.calls == [] and dispatcher.queue_depth == 0


def test_direct_cancelled_waiter_keeps_the_slot_accounting_right() -> None:
    gate = threading.Event()
    model = Model(gate=gate)
    dispatcher = DirectDispatcher(model, EXECUTOR, max_concurrency=1, max_queue=4)

    async def main():
        tasks = [asyncio.ensure_future(dispatcher.submit(rows_of(i * 3, 1))) for i in range(3)]
        await wait_until(lambda: model.active == 1)
        tasks[1].cancel()
        await settle()
        assert dispatcher.queue_depth == 1
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return results, await dispatcher.submit(rows_of(9, 1))

    results, again = asyncio.run(main())
    assert isinstance(results[1], asyncio.CancelledError)
    check(rows_of(0, 1), results[0])
    check(rows_of(6, 1), results[2])
    check(rows_of(9, 1), again)
    assert model.calls == [1, 1, 1] and dispatcher.in_flight == 0 and dispatcher.queue_depth == 0


def test_direct_cancelled_running_call_holds_its_slot_until_the_thread_ends() -> None:
    gate = threading.Event()
    model = Model(gate=gate)
    dispatcher = DirectDispatcher(model, EXECUTOR, max_concurrency=1, max_queue=4)

    async def main():
        first = asyncio.ensure_future(dispatcher.submit(rows_of(0, 1)))
        await wait_until(lambda: model.active == 1)
        first.cancel()
        second = asyncio.ensure_future(dispatcher.submit(rows_of(3, 1)))
        await settle()
        assert dispatcher.in_flight == 1 and dispatcher.queue_depth == 1  # the thread is still busy
        gate.set()
        return await second

    check(rows_of(3, 1), asyncio.run(main()))
    assert model.peak == 1


# --------------------------------------------------------------------------------------------- close
def test_close_flushes_pending_batches_and_refuses_new_requests() -> None:
    model = Model()
    dispatcher = BatchingDispatcher(
        model, EXECUTOR, deployment="closing", max_batch_size=32, max_wait_ms=60_000
    )

    async def main():
        tasks = [asyncio.ensure_future(dispatcher.submit(rows_of(i * 3, 1))) for i in range(5)]
        await settle()
        start = time.perf_counter()
        await asyncio.wait_for(dispatcher.close(), 5)
        took = time.perf_counter() - start
        with pytest.raises(DispatcherClosed, match="closing"):
            await dispatcher.submit(rows_of(0, 1))
        await dispatcher.close()  # idempotent
        return took, await asyncio.gather(*tasks)

    took, results = asyncio.run(main())
    assert took < 1
    for i, out in enumerate(results):
        check(rows_of(i * 3, 1), out)
    assert model.calls == [5] and dispatcher.closed


def test_close_without_drain_fails_queued_requests_and_awaits_running_ones() -> None:
    gate = threading.Event()
    model = Model(gate=gate)
    dispatcher = BatchingDispatcher(model, EXECUTOR, max_batch_size=1, max_wait_ms=0)

    async def main():
        tasks = [asyncio.ensure_future(dispatcher.submit(rows_of(i * 3, 1))) for i in range(3)]
        await wait_until(lambda: model.active == 1)
        closing = asyncio.ensure_future(dispatcher.close(drain=False))
        await settle()
        assert not closing.done()  # the running call is awaited
        gate.set()
        await asyncio.wait_for(closing, 5)
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    check(rows_of(0, 1), results[0])
    assert all(isinstance(r, DispatcherClosed) for r in results[1:])
    assert model.calls == [1]


def test_direct_close_waits_for_queued_and_running_calls() -> None:
    gate = threading.Event()
    model = Model(gate=gate)
    dispatcher = DirectDispatcher(model, EXECUTOR, max_concurrency=1)

    async def main():
        tasks = [asyncio.ensure_future(dispatcher.submit(rows_of(i * 3, 1))) for i in range(3)]
        await wait_until(lambda: model.active == 1)
        closing = asyncio.ensure_future(dispatcher.close())
        await settle()
        with pytest.raises(DispatcherClosed):
            await dispatcher.submit(rows_of(0, 1))
        assert not closing.done()
        gate.set()
        await asyncio.wait_for(closing, 5)
        assert all(t.done() for t in tasks)
        return [t.result() for t in tasks]

    for i, out in enumerate(asyncio.run(main())):
        check(rows_of(i * 3, 1), out)


def test_direct_close_without_drain_fails_waiters() -> None:
    gate = threading.Event()
    dispatcher = DirectDispatcher(Model(gate=gate), EXECUTOR, max_concurrency=1)

    async def main():
        tasks = [asyncio.ensure_future(dispatcher.submit(rows_of(i * 3, 1))) for i in range(3)]
        await settle()
        closing = asyncio.ensure_future(dispatcher.close(drain=False))
        await settle()
        gate.set()
        await asyncio.wait_for(closing, 5)
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    check(rows_of(0, 1), results[0])
    assert all(isinstance(r, DispatcherClosed) for r in results[1:])


# --------------------------------------------------------------------------------------------- several loops
def _in_thread_loop(coro_fn, *args):
    """Run ``coro_fn(*args)`` under ``asyncio.run`` in a new thread (a second, concurrently running loop)."""
    return asyncio.to_thread(asyncio.run, coro_fn(*args))


def test_callers_on_other_loops_share_the_batches() -> None:
    model = Model()
    dispatcher = BatchingDispatcher(model, EXECUTOR, max_batch_size=16, max_wait_ms=50, wait_when_idle=True)

    async def main():
        return await asyncio.gather(
            dispatcher.submit(rows_of(0, 1)),
            _in_thread_loop(dispatcher.submit, rows_of(3, 1)),
            dispatcher.submit(rows_of(6, 1)),
        )

    for i, out in enumerate(asyncio.run(main())):
        check(rows_of(i * 3, 1), out)
    assert model.calls == [3]


def test_plain_threads_each_with_a_loop_merge_requests() -> None:
    # What the Platform's sync facade does: every blocking caller drives an event loop of its own.
    model = Model()
    dispatcher = BatchingDispatcher(model, EXECUTOR, max_batch_size=16, max_wait_ms=30)
    results: dict[int, tuple] = {}
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = asyncio.run(dispatcher.submit(rows_of(i * 3, 1)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for i in range(8):
        check(rows_of(i * 3, 1), results[i])
    assert len(model.calls) < 8
    dispatcher.close_sync(timeout=5)
    with pytest.raises(DispatcherClosed):
        asyncio.run(dispatcher.submit(rows_of(0, 1)))


def test_a_slot_is_handed_to_a_waiter_on_another_loop() -> None:
    gate = threading.Event()
    model = Model(gate=gate)
    dispatcher = DirectDispatcher(model, EXECUTOR, max_concurrency=1, max_queue=4)

    async def main():
        first = asyncio.ensure_future(dispatcher.submit(rows_of(0, 1)))
        await wait_until(lambda: model.active == 1)
        other = asyncio.ensure_future(_in_thread_loop(dispatcher.submit, rows_of(3, 1)))
        await wait_until(lambda: dispatcher.queue_depth == 1)
        gate.set()
        return await asyncio.gather(first, other)

    for i, out in enumerate(asyncio.run(main())):
        check(rows_of(i * 3, 1), out)
    assert model.peak == 1 and dispatcher.in_flight == 0 and dispatcher.queue_depth == 0


def test_timeouts_withdraw_the_request_on_any_loop() -> None:
    gate = threading.Event()
    model = Model(gate=gate)
    dispatcher = BatchingDispatcher(model, EXECUTOR, max_batch_size=1, max_wait_ms=0, max_concurrency=1)

    async def timed_out():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(dispatcher.submit(rows_of(3, 1)), 0.05)

    async def main():
        blocked = asyncio.ensure_future(dispatcher.submit(rows_of(0, 1)))
        await wait_until(lambda: model.active == 1)
        await _in_thread_loop(timed_out)
        assert dispatcher.queue_depth == 0  # withdrawn, on the other loop
        gate.set()
        await blocked
        return await dispatcher.submit(rows_of(6, 1))

    check(rows_of(6, 1), asyncio.run(main()))
    assert model.calls == [1, 1]  # the timed-out request never ran


def test_dispatcher_survives_successive_event_loops() -> None:
    dispatcher = BatchingDispatcher(Model(), EXECUTOR, max_wait_ms=1)
    for i in range(3):
        check(rows_of(i, 1), asyncio.run(dispatcher.submit(rows_of(i, 1))))
    direct = DirectDispatcher(Model(), EXECUTOR, inline_below_s=1.0)
    for i in range(3):
        check(rows_of(i, 2), asyncio.run(direct.submit(rows_of(i, 2))))
    dispatcher.close_sync()
    direct.close_sync()


def test_a_caller_loop_that_ends_mid_call_costs_no_slot() -> None:
    # The slot is released by the worker thread, so a loop that is gone before its answer arrives does not
    # leave the dispatcher one slot short.
    gate = threading.Event()
    dispatcher = DirectDispatcher(Model(gate=gate), EXECUTOR, max_concurrency=1)

    abandoned = []

    async def abandon():
        abandoned.append(asyncio.ensure_future(dispatcher.submit(rows_of(0, 1))))  # left running as the loop ends
        await wait_until(lambda: dispatcher.in_flight == 1)

    asyncio.run(abandon())
    gate.set()
    deadline = time.monotonic() + 5
    while dispatcher.in_flight:
        assert time.monotonic() < deadline, "the slot was never released"
        time.sleep(0.001)
    check(rows_of(3, 1), asyncio.run(dispatcher.submit(rows_of(3, 1))))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_batch_size": 0},
        {"max_wait_ms": -1},
        {"max_queue": 0},
        {"max_concurrency": 0},
        {"max_wait_ms": float("nan")},
    ],
)
def test_batching_arguments_are_checked(kwargs) -> None:
    with pytest.raises(ValueError):
        BatchingDispatcher(Model(), EXECUTOR, **kwargs)


def test_direct_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        DirectDispatcher(Model(), EXECUTOR, max_concurrency=0)
    with pytest.raises(ValueError):
        DirectDispatcher(Model(), EXECUTOR, max_queue=-1)


# --------------------------------------------------------------------------------------------- inline fast path
def _threads_seen(delay_s: float, *, inline_below_s: float, calls: int = 6, reset_after: int | None = None):
    """Run ``calls`` sequential requests; return (event-loop thread id, the thread id of each model call)."""
    seen: list[int] = []

    def model(inputs):
        seen.append(threading.get_ident())
        if delay_s:
            time.sleep(delay_s)
        return {"y": inputs["x"] * 2}

    async def main():
        with ThreadPoolExecutor(2) as pool:
            d = DirectDispatcher(model, pool, inline_below_s=inline_below_s)
            for i in range(calls):
                if reset_after is not None and i == reset_after:
                    d.reset_timing()
                out, _ = await d.submit({"x": np.full((1, 2), float(i))})
                np.testing.assert_array_equal(out["y"], np.full((1, 2), 2.0 * i))
            await d.close()
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    return loop_thread, seen


def test_fast_models_run_inline_on_the_loop_after_the_first_measured_call():
    loop_thread, seen = _threads_seen(0.0, inline_below_s=0.05)
    assert seen[0] != loop_thread  # unmeasured: the first call goes to the executor
    assert all(t == loop_thread for t in seen[1:])


def test_slow_models_and_reset_timing_stay_off_the_loop():
    loop_thread, seen = _threads_seen(0.01, inline_below_s=0.001)
    assert all(t != loop_thread for t in seen)
    loop_thread, seen = _threads_seen(0.0, inline_below_s=0.05, reset_after=3)
    assert seen[3] != loop_thread and seen[2] == loop_thread and seen[4] == loop_thread
    loop_thread, seen = _threads_seen(0.0, inline_below_s=0.0)
    assert all(t != loop_thread for t in seen)  # 0 disables inlining


def test_an_idle_model_takes_a_lone_request_at_once_unless_told_to_wait():
    """Batching must not add max_wait_ms to a lone request's latency; under load batches still merge."""

    def model(inputs):
        return {"y": inputs["x"] + 1}

    async def one(wait_when_idle: bool) -> float:
        d = BatchingDispatcher(model, EXECUTOR, max_batch_size=8, max_wait_ms=400, wait_when_idle=wait_when_idle)
        start = time.perf_counter()
        out, _ = await d.submit({"x": np.zeros((1, 2))})
        elapsed = time.perf_counter() - start
        np.testing.assert_array_equal(out["y"], np.ones((1, 2)))
        await d.close()
        return elapsed

    assert asyncio.run(one(False)) < 0.2  # 400 ms would be the hold window
    assert asyncio.run(one(True)) >= 0.35


def test_requests_arriving_while_a_call_runs_are_merged_into_the_next_batch():
    calls: list[int] = []
    gate = threading.Event()

    def model(inputs):
        calls.append(len(inputs["x"]))
        if len(calls) == 1:
            gate.wait(5)  # the first (lone) call is slow: everything else arrives while it runs
        return {"y": inputs["x"] * 2}

    async def main():
        d = BatchingDispatcher(model, EXECUTOR, max_batch_size=16, max_wait_ms=20)
        first = asyncio.ensure_future(d.submit({"x": np.zeros((1, 1))}))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(d.submit({"x": np.full((1, 1), float(i))})) for i in range(10)]
        await asyncio.sleep(0.05)
        gate.set()
        outs = await asyncio.gather(first, *rest)
        await d.close()
        return outs

    outs = asyncio.run(main())
    assert calls == [1, 10]
    assert [float(o["y"][0, 0]) for o, _ in outs[1:]] == [2.0 * i for i in range(10)]
