"""Serving benchmark: the full ``modelyard serve`` against a bare Litestar + onnxruntime app, in one run.

    .venv/bin/python benchmarks/serving.py               # ~2 minutes, 5 s per load point
    .venv/bin/python benchmarks/serving.py --quick       # ~1 minute, 2 s per point, one cold-start sample
    .venv/bin/python benchmarks/serving.py --json        # one JSON document on stdout instead of tables

Everything runs on 127.0.0.1 and is measured in this one run, so that the ratios mean something on a small,
noisy machine (DESIGN.md, "Performance targets"):

1. **Serving** the quickstart's churn model (20-feature logistic regression, ONNX), one row per request, V2 JSON,
   at concurrency 1, 16 and 64 — through ``modelyard serve`` (a subprocess on the embedded stack: SQLite
   registry, local files, local runtime; the model registered and deployed into a temp data dir first) with
   batching off and on, and through a bare Litestar app on uvicorn with the same settings whose one route parses
   the same body and calls onnxruntime (``_bare_app.py``). The load points are interleaved (bare, off, on at each
   concurrency) so that drift in the machine's speed hits all three alike.
   Targets: modelyard (batching off) ≥ 0.7x the bare app's throughput at c16; < 1 ms added p50 at c1.
2. **Batching**: a model whose per-call cost dominates (``_models.build_deep``: ~1 ms per call at one row,
   ~2 ms at 64 rows) at c64, ``max_batch_size`` 64 / ``max_wait_ms`` 2 vs batching off. Target ≥ 3x.
3. **Cold start**: ``modelyard serve`` process start → ``/v2/health/ready`` 200 with the recorded deployment
   restored (< 2 s); a deploy call (``POST /api/v1/deployments`` on the running server, and ``Platform.deploy``
   in this process) → first successful prediction (< 1 s); the idle server's PSS with one model deployed,
   summed over its process tree from ``/proc/<pid>/smaps_rollup`` (< 150 MB).

Load comes from ``wrk`` (one thread, Lua script for the POST body) when it is installed, else from a
multi-process asyncio generator over raw keep-alive sockets (``_load.py``). Every process started here is
stopped at the end, whatever happens. Exit status: 0 when every target passed, 1 when one failed, 2 on error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform as pyplatform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _models
from _load import generator_name, run_load
from _procs import Processes, Server, cpu_seconds, free_port, http_request, pss_mb, wait_for

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CONCURRENCIES = (1, 16, 64)
BATCHING = {"max_batch_size": 64, "max_wait_ms": 2}
READY_TIMEOUT = 60.0

# name -> (model, batching) deployed for the serving and batching phases
DEPLOYMENTS = {
    "churn": ("churn", None),
    "churn-batched": ("churn", BATCHING),
    "deep": ("deep", None),
    "deep-batched": ("deep", BATCHING),
}


def log(msg: str) -> None:
    """Progress to stderr (stdout carries only the report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ setup
def write_config(work: Path, port: int) -> Path:
    """The embedded stack's config, data in ``work/data``."""
    path = work / "modelyard.toml"
    path.write_text(f'[platform]\ndata_dir = "{work / "data"}"\n\n[server]\nhost = "127.0.0.1"\nport = {port}\n')
    return path


def prepare(config: Path, models: dict[str, Path],
            deploy: dict[str, tuple[str, dict | None]]) -> tuple[dict[str, float], dict[str, str]]:
    """Register every model (idempotent) and deploy ``deploy`` through the Python API.

    Returns, per deployment made, the seconds from ``Platform.deploy`` to its first successful prediction, and
    the provider chosen for each slot (what "the full server" consists of in this run).
    """
    import numpy as np
    from modelyard import Platform

    timings = {}
    with Platform.from_config(config) as platform:
        for name, path in models.items():
            if not platform.registry.search(prefix=name, limit=10).items:
                platform.registry.register(name, path, flavor="onnx", alias="production")
        x = np.zeros((1, _models.N_FEATURES), dtype=np.float32)
        for name, (model, batching) in deploy.items():
            started = time.perf_counter()
            platform.deploy(f"{model}@production", name=name, batching=batching)
            platform.predict(name, {"float_input": x})
            timings[name] = time.perf_counter() - started
        stack = {slot: ", ".join(c.provider.name for c in choices) or "-"
                 for slot, choices in platform.config.slots.items()}
    return timings, stack


def serve_cmd(config: Path, port: int) -> list[str]:
    """The command line of the server under test."""
    return [PY, "-m", "modelyard", "-c", str(config), "serve", "--dev", "--port", str(port)]


def start_modelyard(procs: Processes, config: Path, port: int,
                    log_path: Path) -> tuple[Server, float, float, bool]:
    """Start ``modelyard serve``; return (server, seconds to ready, CPU seconds it used to get there, whether
    ``churn`` was ready at that moment).

    The CPU time is the figure that does not depend on what else the machine runs meanwhile.
    """
    server = procs.start("modelyard", serve_cmd(config, port), log=log_path, cwd=config.parent)
    base = f"http://127.0.0.1:{port}"
    if wait_for(f"{base}/v2/health/ready", timeout=READY_TIMEOUT, proc=server.proc) is None:
        raise RuntimeError(f"modelyard serve did not become ready within {READY_TIMEOUT:.0f}s:\n{server.tail()}")
    ready_s = time.perf_counter() - server.started_at
    cpu_s = cpu_seconds(server.proc.pid)
    restored = http_request("GET", f"{base}/v2/models/churn/ready")[0] == 200
    return server, ready_s, cpu_s, restored


def start_bare(procs: Processes, model: Path, port: int, log_path: Path) -> Server:
    """Start the bare Litestar app serving ``model`` as ``churn``."""
    server = procs.start("bare", [PY, str(Path(__file__).with_name("_bare_app.py")), str(model), "--port", str(port)],
                         log=log_path)
    if wait_for(f"http://127.0.0.1:{port}/v2/models/churn/infer", timeout=READY_TIMEOUT, method="POST",
                body=_models.v2_body(), proc=server.proc) is None:
        raise RuntimeError(f"the bare app did not start:\n{server.tail()}")
    return server


def check_outputs(url: str, body: dict, expect: tuple[str, ...]) -> dict[str, Any]:
    """POST one request and check it is a V2 response with the ``expect`` outputs; returns the decoded body."""
    status, raw = http_request("POST", url, body)
    if status != 200:
        raise RuntimeError(f"POST {url} answered {status}: {raw[:500]!r}")
    doc = json.loads(raw)
    names = {o["name"] for o in doc.get("outputs", [])}
    if not set(expect) <= names:
        raise RuntimeError(f"POST {url}: outputs {sorted(names)}, expected {list(expect)}")
    return doc


def deploy_over_http(base: str, name: str, model: str, batching: dict | None) -> float | None:
    """Seconds from ``POST /api/v1/deployments`` to the first 200 from the new deployment's infer route.

    ``None`` when the server has no such route (the figure then comes from the Python API alone).
    """
    started = time.perf_counter()
    payload: dict[str, Any] = {"model": f"{model}@production", "name": name}
    if batching is not None:
        payload["batching"] = batching
    status, raw = http_request("POST", f"{base}/api/v1/deployments", payload, timeout=30)
    if status in (404, 405):
        return None
    if status not in (200, 201, 202):
        raise RuntimeError(f"POST /api/v1/deployments answered {status}: {raw[:500]!r}")
    if wait_for(f"{base}/v2/models/{name}/infer", timeout=30, method="POST", body=_models.v2_body()) is None:
        raise RuntimeError(f"deployment {name!r} never answered a prediction")
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------------------ phases
def measure_cold(procs: Processes, work: Path, models: dict[str, Path], samples: int) -> dict[str, Any]:
    """Cold start, deploy → first prediction and idle memory, on a data dir with only ``churn`` deployed."""
    (work / "cold").mkdir(exist_ok=True)
    port = free_port()
    config = write_config(work / "cold", port)
    log("cold: registering and deploying churn through the Python API")
    timings, stack = prepare(config, models, {"churn": DEPLOYMENTS["churn"]})
    py_deploy = timings["churn"]
    ready, ready_cpu, restored_all = [], [], True
    server = None
    for i in range(samples):
        if server is not None:
            procs.stop(server)
        server, seconds, cpu_s, restored = start_modelyard(procs, config, port, work / f"cold-serve-{i}.log")
        ready.append(seconds)
        ready_cpu.append(cpu_s)
        restored_all &= restored
        log(f"cold: sample {i + 1}/{samples}: ready in {seconds:.3f}s, {cpu_s:.2f} CPU s "
            f"(churn restored: {restored})")
    assert server is not None
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/v2/models/churn/infer"
    body = _models.v2_body()
    check_outputs(url, body, ("probability", "label"))
    for _ in range(50):  # what an idle server has seen: a few requests, the model's arena allocated
        http_request("POST", url, body)
    time.sleep(1.0)
    pss = pss_mb(server.proc.pid)
    log(f"cold: idle PSS {pss:.1f} MiB" if pss is not None else "cold: PSS unreadable")
    http_deploy = deploy_over_http(base, "churn-2", "churn", None)
    log(f"cold: HTTP deploy → first prediction: {http_deploy:.3f}s" if http_deploy is not None
        else "cold: no POST /api/v1/deployments route; deploy timing from Platform.deploy only")
    procs.stop(server)
    return {"stack": stack, "ready_s": ready, "ready_median_s": statistics.median(ready), "ready_cpu_s": ready_cpu,
            "restored": restored_all,
            "pss_mb": pss, "deploy_http_s": http_deploy, "deploy_python_s": py_deploy}


def point(url: str, raw: bytes, pid: int, *, concurrency: int, duration: float, prefer_wrk: bool) -> dict[str, Any]:
    """One load point, plus the server's CPU time per request (its process tree's user+system time).

    CPU per request is the steadiest figure on a shared machine: it does not move when another process steals
    a core, where throughput does.
    """
    before = cpu_seconds(pid)
    r = run_load(url, raw, concurrency=concurrency, duration=duration, prefer_wrk=prefer_wrk)
    used = cpu_seconds(pid) - before
    answered = r.requests + r.errors
    return {**r.to_dict(), "server_cpu_us": round(used / answered * 1e6, 1) if answered else None}


def summarize(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Several rounds of one load point: the median of each figure, and every round's req/s."""
    def med(key: str) -> float | None:
        values = [p[key] for p in points if p[key] is not None]
        return round(statistics.median(values), 3) if values else None

    return {"concurrency": points[0]["concurrency"], "rps": med("rps"), "p50_ms": med("p50_ms"),
            "p99_ms": med("p99_ms"), "server_cpu_us": med("server_cpu_us"),
            "errors": sum(p["errors"] for p in points), "rounds_rps": [p["rps"] for p in points]}


def measure_serving(procs: Processes, work: Path, models: dict[str, Path], duration: float, rounds: int,
                    prefer_wrk: bool) -> dict[str, Any]:
    """Throughput and latency of bare vs modelyard (batching off/on), then the batching phase."""
    (work / "serve").mkdir(exist_ok=True)
    port = free_port()
    config = write_config(work / "serve", port)
    log("serving: registering and deploying " + ", ".join(DEPLOYMENTS))
    prepare(config, models, DEPLOYMENTS)
    bare_port = free_port()
    bare = start_bare(procs, models["churn"], bare_port, work / "bare.log")
    server, *_ = start_modelyard(procs, config, port, work / "serve.log")
    base = f"http://127.0.0.1:{port}"
    targets = {
        "bare": (f"http://127.0.0.1:{bare_port}/v2/models/churn/infer", bare.proc.pid),
        "modelyard": (f"{base}/v2/models/churn/infer", server.proc.pid),
        "modelyard+batching": (f"{base}/v2/models/churn-batched/infer", server.proc.pid),
    }
    body = _models.v2_body()
    probs = {}
    for name, (url, _) in targets.items():
        doc = check_outputs(url, body, ("probability",) if name == "bare" else ("probability", "label"))
        probs[name] = next(o for o in doc["outputs"] if o["name"] == "probability")["data"]
    if any(abs(p[0] - probs["bare"][0]) > 1e-5 for p in probs.values()):
        raise RuntimeError(f"the servers disagree on the prediction: {probs}")
    deep = {"off": f"{base}/v2/models/deep/infer", "on": f"{base}/v2/models/deep-batched/infer"}
    for url in deep.values():
        check_outputs(url, body, ("probability",))

    raw = json.dumps(body).encode()
    warm = min(2.0, duration)
    for url, _ in targets.values():  # warms caches, allocator arenas, the executor's threads
        run_load(url, raw, concurrency=16, duration=warm, prefer_wrk=prefer_wrk)
    points: dict[str, dict[int, list[dict[str, Any]]]] = {name: {c: [] for c in CONCURRENCIES} for name in targets}
    for i in range(rounds):
        for c in CONCURRENCIES:
            for name, (url, pid) in targets.items():
                p = point(url, raw, pid, concurrency=c, duration=duration, prefer_wrk=prefer_wrk)
                points[name][c].append(p)
                log(f"serving {i + 1}/{rounds}: {name:<19} c={c:<3} {p['rps']:8.0f} req/s  p50 {p['p50_ms']:6.3f} ms"
                    f"  p99 {p['p99_ms']:7.3f} ms  cpu {p['server_cpu_us']} us/req  errors {p['errors']}")
    procs.stop(bare)  # the batching phase has the machine to itself

    for url in deep.values():
        run_load(url, raw, concurrency=64, duration=warm, prefer_wrk=prefer_wrk)
    batching: dict[str, list[dict[str, Any]]] = {mode: [] for mode in deep}
    for i in range(rounds):
        for mode, url in deep.items():
            p = point(url, raw, server.proc.pid, concurrency=64, duration=duration, prefer_wrk=prefer_wrk)
            batching[mode].append(p)
            log(f"batching {i + 1}/{rounds}: deep, batching {mode:<3} c=64 {p['rps']:8.0f} req/s  "
                f"p50 {p['p50_ms']:7.3f} ms  p99 {p['p99_ms']:7.3f} ms  errors {p['errors']}")
    procs.stop(server)
    return {"serving": {name: {str(c): summarize(ps) for c, ps in by_c.items()} for name, by_c in points.items()},
            "batching": {mode: summarize(ps) for mode, ps in batching.items()}}


# ------------------------------------------------------------------------------------------------ report
def paired_ratio(numerators: list[float], denominators: list[float]) -> float:
    """Median over rounds of each round's ratio: the two figures of a round were measured back to back, so their
    ratio is steadier than a ratio of medians when the machine's speed drifts."""
    ratios = [n / d for n, d in zip(numerators, denominators, strict=True) if d]
    return statistics.median(ratios) if ratios else 0.0


def targets_of(cold: dict[str, Any], served: dict[str, Any]) -> list[dict[str, Any]]:
    """Each DESIGN.md target: measured value, bound, PASS/FAIL."""
    s, b = served["serving"], served["batching"]
    ratio = paired_ratio(s["modelyard"]["16"]["rounds_rps"], s["bare"]["16"]["rounds_rps"])
    added = s["modelyard"]["1"]["p50_ms"] - s["bare"]["1"]["p50_ms"]
    lift = paired_ratio(b["on"]["rounds_rps"], b["off"]["rounds_rps"])
    deploy = cold["deploy_http_s"] if cold["deploy_http_s"] is not None else cold["deploy_python_s"]
    deploy_how = "POST /api/v1/deployments" if cold["deploy_http_s"] is not None else "Platform.deploy"
    rows = [
        ("throughput modelyard/bare at c16", ratio, ">=", 0.7, "x"),
        ("added p50 at c1", added, "<", 1.0, "ms"),
        ("batching on/off at c64 (deep MLP)", lift, ">=", 3.0, "x"),
        ("cold start to /v2/health/ready (median)", cold["ready_median_s"], "<", 2.0, "s"),
        (f"deploy -> first prediction ({deploy_how})", deploy, "<", 1.0, "s"),
        ("idle PSS, one model deployed", cold["pss_mb"] if cold["pss_mb"] is not None else float("inf"), "<",
         150.0, "MB"),
    ]
    out = []
    for name, value, op, bound, unit in rows:
        ok = value >= bound if op == ">=" else value < bound
        out.append({"target": name, "value": round(value, 4), "op": op, "bound": bound, "unit": unit,
                    "pass": bool(ok)})
    if not cold["restored"]:
        out.append({"target": "deployment restored when /v2/health/ready first answers 200", "value": 0, "op": "==",
                    "bound": 1, "unit": "", "pass": False})
    return out


def machine() -> dict[str, Any]:
    """What ran the benchmark."""
    cpu = ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu or pyplatform.processor(), "cores": os.cpu_count(), "python": pyplatform.python_version(),
            "os": pyplatform.platform(), "date": dt.date.today().isoformat()}


def print_report(result: dict[str, Any]) -> None:
    """The human-readable report."""
    m, cfg = result["machine"], result["config"]
    print(f"modelyard serving benchmark — {m['date']}, {m['cpu']} ({m['cores']} cores), Python {m['python']}")
    print(f"load generator: {cfg['generator']}, {cfg['duration_s']:g} s per point, median of {cfg['rounds']} "
          "interleaved round(s), 127.0.0.1, one row per request")
    print(f"deep MLP per call in-process: {cfg['deep_ms_1row']:.2f} ms (1 row), {cfg['deep_ms_64rows']:.2f} ms "
          f"(64 rows); churn: {cfg['churn_ms_1row'] * 1000:.0f} µs")
    print("modelyard serve --dev, embedded stack: " + "; ".join(f"{k}={v}" for k, v in result["stack"].items()))
    print("\nserving the churn model (20-feature logistic regression, ONNX), V2 JSON")
    print(f"  {'server':<20}{'conc':>5}{'req/s':>9}{'vs bare':>9}{'p50 ms':>9}{'p99 ms':>9}{'cpu us/req':>11}"
          f"{'errors':>7}")
    serving = result["serving"]
    for c in CONCURRENCIES:
        bare_rounds = serving["bare"][str(c)]["rounds_rps"]
        for name, points in serving.items():
            p = points[str(c)]
            rel = f"{paired_ratio(p['rounds_rps'], bare_rounds):.2f}x"
            print(f"  {name:<20}{c:>5}{p['rps']:>9.0f}{rel:>9}{p['p50_ms']:>9.3f}{p['p99_ms']:>9.3f}"
                  f"{p['server_cpu_us'] or 0:>11.0f}{p['errors']:>7}")
    print("\nbatching, deep MLP at c64 (max_batch_size 64, max_wait_ms 2); ratios are medians of per-round ratios")
    for mode, p in result["batching"].items():
        print(f"  batching {mode:<4}{p['rps']:>8.0f} req/s  p50 {p['p50_ms']:.3f} ms  p99 {p['p99_ms']:.3f} ms  "
              f"cpu {p['server_cpu_us'] or 0:.0f} us/req  errors {p['errors']}")
    cold = result["cold_start"]
    print("\ncold start")
    print("  serve -> /v2/health/ready: " + ", ".join(f"{s:.3f}s" for s in cold["ready_s"])
          + f" (deployment restored: {cold['restored']}); CPU used by then: "
          + ", ".join(f"{s:.2f}s" for s in cold["ready_cpu_s"]))
    if cold["deploy_http_s"] is not None:
        print(f"  POST /api/v1/deployments -> first prediction: {cold['deploy_http_s']:.3f}s")
    print(f"  Platform.deploy -> first prediction (in-process): {cold['deploy_python_s']:.3f}s")
    pss = cold["pss_mb"]
    print(f"  idle PSS, one model deployed: {pss:.1f} MB" if pss is not None else "  idle PSS: unreadable")
    print("\ntargets")
    for t in result["targets"]:
        print(f"  {'PASS' if t['pass'] else 'FAIL'}  {t['target']}: {t['value']:g} {t['unit']} "
              f"(target {t['op']} {t['bound']:g} {t['unit']})")


def run(duration: float, rounds: int, cold_samples: int, prefer_wrk: bool) -> dict[str, Any]:
    """Build the models, run every phase, stop every process; the whole result as plain data."""
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as tmp, Processes() as procs:
        work = Path(tmp)
        log(f"building models in {work}")
        models = {"churn": _models.build_churn(work / "churn.onnx"), "deep": _models.build_deep(work / "deep.onnx")}
        costs = {"churn_ms_1row": _models.call_cost_ms(models["churn"], 1),
                 "deep_ms_1row": _models.call_cost_ms(models["deep"], 1, repeat=20),
                 "deep_ms_64rows": _models.call_cost_ms(models["deep"], 64, repeat=20)}
        try:
            cold = measure_cold(procs, work, models, cold_samples)
            served = measure_serving(procs, work, models, duration, rounds, prefer_wrk)
        except Exception:
            for log_file in sorted(work.glob("*.log")):
                log(f"--- {log_file.name} (tail)\n" + "\n".join(log_file.read_text(errors="replace")
                                                               .splitlines()[-30:]))
            raise
    return {
        "machine": machine(),
        "stack": cold.pop("stack"),
        "config": {"generator": generator_name(prefer_wrk), "duration_s": duration, "rounds": rounds,
                   "batching": BATCHING, **{k: round(v, 4) for k, v in costs.items()}},
        "serving": served["serving"],
        "batching": served["batching"],
        "cold_start": {k: _rounded(v) for k, v in cold.items()},
        "targets": targets_of(cold, served),
    }


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def main() -> int:
    """Parse the command line, run, print; exit status 0 if every target passed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load point (default 5)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measure every load point this many times, interleaved; report medians (default 3)")
    parser.add_argument("--quick", action="store_true", help="2 s per point, one round, one cold-start sample")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    parser.add_argument("--cold-samples", type=int, default=3, help="server starts to time (default 3)")
    parser.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk "
                        "is installed")
    args = parser.parse_args()
    duration = 2.0 if args.quick and args.duration == 5.0 else args.duration
    if duration <= 0 or duration > 120:
        parser.error("--duration must be in (0, 120] seconds")
    samples = 1 if args.quick else max(1, args.cold_samples)
    rounds = 1 if args.quick else max(1, args.rounds)
    result = run(duration, rounds, samples, prefer_wrk=not args.python_load)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0 if all(t["pass"] for t in result["targets"]) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        log(f"benchmark failed: {type(exc).__name__}: {exc}")
        sys.exit(2)
