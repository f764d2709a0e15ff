"""Closed-loop HTTP load for the benchmarks: ``wrk`` when installed, else a multi-process raw-socket generator.

Both keep ``concurrency`` keep-alive HTTP/1.1 connections to 127.0.0.1 busy for a fixed duration, each sending
the same POST body again as soon as the previous answer arrived, and report throughput, p50/p99 latency and the
number of failed requests (transport errors and non-2xx answers). The generator must never be the bottleneck:
``wrk`` (C, one thread) manages well over 50,000 req/s on one core; the fallback runs several processes, each
an asyncio loop (uvloop when installed) writing pre-encoded request bytes and parsing only the status line and
``Content-Length`` — never httpx, whose per-request cost is of the order of the servers' being measured.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import tempfile
import time

import attrs

__all__ = ["LoadResult", "generator_name", "run_load"]

# wrk's Lua hook: the POST body and headers, and a done() that prints one JSON line we parse (wrk's own text
# output rounds latencies to two digits and hides the error breakdown).
_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %f, '
    .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@attrs.frozen(kw_only=True)
class LoadResult:
    """One load point: ``requests`` answered 2xx in ``duration_s`` by ``concurrency`` connections.

    Latencies are in milliseconds; ``errors`` counts transport errors, timeouts and non-2xx answers.
    """

    concurrency: int
    duration_s: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    generator: str

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, float | int | str]:
        """A JSON-ready dict (rounded) including ``rps``."""
        return {"concurrency": self.concurrency, "rps": round(self.rps, 1), "p50_ms": round(self.p50_ms, 3),
                "p99_ms": round(self.p99_ms, 3), "mean_ms": round(self.mean_ms, 3), "requests": self.requests,
                "errors": self.errors, "duration_s": round(self.duration_s, 3), "generator": self.generator}


def generator_name(prefer_wrk: bool = True) -> str:
    """``"wrk"`` when it will be used, else ``"python"``."""
    return "wrk" if prefer_wrk and shutil.which("wrk") else "python"


def run_load(url: str, body: bytes, *, concurrency: int, duration: float, headers: dict[str, str] | None = None,
             prefer_wrk: bool = True, timeout: float = 10.0) -> LoadResult:
    """Drive ``POST url`` with ``body`` from ``concurrency`` connections for ``duration`` seconds."""
    host = _host_of(url)
    if host not in ("127.0.0.1", "localhost", "[::1]"):
        raise ValueError(f"load is only generated against the loopback interface, not {host!r}")
    if generator_name(prefer_wrk) == "wrk":
        return _run_wrk(url, body, concurrency=concurrency, duration=duration, headers=headers or {},
                        timeout=timeout)
    return _run_python(url, body, concurrency=concurrency, duration=duration, headers=headers or {},
                       timeout=timeout)


def _host_of(url: str) -> str:
    rest = url.split("://", 1)[-1]
    hostport = rest.split("/", 1)[0]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 or hostport.startswith("[") else hostport


def _split_url(url: str) -> tuple[str, int, str]:
    rest = url.split("://", 1)[-1]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    return host, int(port), "/" + path


# ------------------------------------------------------------------------------------------------ wrk
def _run_wrk(url: str, body: bytes, *, concurrency: int, duration: float, headers: dict[str, str],
             timeout: float) -> LoadResult:
    # One wrk thread is plenty and leaves the other core to the server; wrk needs connections >= threads.
    header_lines = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    script = _WRK_SCRIPT.format(body=_lua_string(body), headers=header_lines)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
        script_path = fh.name
    try:
        cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", f"--timeout={int(timeout)}s",
               "-s", script_path, url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + timeout + 30)
    finally:
        os.unlink(script_path)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    r = json.loads(line[len("RESULT "):])
    errors = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"]
    # summary.requests counts every answered request, non-2xx included (those are also in errors.status).
    ok = max(0, r["requests"] - r["status"])
    return LoadResult(concurrency=concurrency, duration_s=r["duration_us"] / 1e6, requests=ok, errors=errors,
                      p50_ms=r["p50_us"] / 1000, p99_ms=r["p99_us"] / 1000, mean_ms=r["mean_us"] / 1000,
                      generator="wrk")


def _lua_string(data: bytes) -> str:
    # A Lua string literal with every byte escaped as \ddd: safe for any body.
    return '"' + "".join(f"\\{b:03d}" for b in data) + '"'


# ------------------------------------------------------------------------------------------------ python
def _run_python(url: str, body: bytes, *, concurrency: int, duration: float, headers: dict[str, str],
                timeout: float) -> LoadResult:
    host, port, path = _split_url(url)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body
    # Up to two worker processes on this class of machine; each handles its share of the connections.
    n_procs = max(1, min(concurrency, os.cpu_count() or 1, 4))
    shares = [concurrency // n_procs + (1 if i < concurrency % n_procs else 0) for i in range(n_procs)]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 0.5 + 0.2 * n_procs  # every process starts at the same instant
    procs = [ctx.Process(target=_worker, args=(host, port, request, share, start_at, duration, timeout, queue),
                         daemon=True) for share in shares]
    for p in procs:
        p.start()
    latencies: list[float] = []
    ok = errors = 0
    elapsed = 0.0
    try:
        for _ in procs:
            lat, n_ok, n_err, el = queue.get(timeout=duration + timeout + 30)
            latencies += lat
            ok += n_ok
            errors += n_err
            elapsed = max(elapsed, el)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    latencies.sort()
    return LoadResult(concurrency=concurrency, duration_s=elapsed, requests=ok, errors=errors,
                      p50_ms=_percentile(latencies, 50) * 1000, p99_ms=_percentile(latencies, 99) * 1000,
                      mean_ms=(sum(latencies) / len(latencies) * 1000) if latencies else 0.0, generator="python")


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    idx = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[idx]


def _worker(host: str, port: int, request: bytes, connections: int, start_at: float, duration: float,
            timeout: float, queue: mp.Queue) -> None:
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    queue.put(runner(_drive(host, port, request, connections, start_at, duration, timeout)))


async def _drive(host: str, port: int, request: bytes, connections: int, start_at: float, duration: float,
                 timeout: float) -> tuple[list[float], int, int, float]:
    await asyncio.sleep(max(0.0, start_at - time.time()))
    t0 = time.perf_counter()
    deadline = t0 + duration
    results = await asyncio.gather(*(_connection(host, port, request, deadline, timeout) for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    latencies = [x for lat, _, _ in results for x in lat]
    return latencies, sum(r[1] for r in results), sum(r[2] for r in results), elapsed


async def _connection(host: str, port: int, request: bytes, deadline: float,
                      timeout: float) -> tuple[list[float], int, int]:
    latencies: list[float] = []
    ok = errors = 0
    perf = time.perf_counter
    reader = writer = None
    while perf() < deadline:
        if writer is None:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            except (OSError, TimeoutError):
                errors += 1
                await asyncio.sleep(0.01)
                continue
        started = perf()
        try:
            writer.write(request)
            status, keep = await asyncio.wait_for(_read_response(reader), timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            writer.close()
            reader = writer = None
            continue
        latencies.append(perf() - started)
        if 200 <= status < 300:
            ok += 1
        else:
            errors += 1
        if not keep:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()
    return latencies, ok, errors


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    chunked = False
    keep = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    elif length is None:
        raise ValueError("response without Content-Length or chunked encoding")
    return status, keep

