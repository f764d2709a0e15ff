"""Hostile uploads against a real ``modelyard serve --dev`` on 127.0.0.1: none of them may hang the server, crash
it or leave anything behind.

- 50 concurrent uploads of a 300-byte ONNX model whose ``Loop`` runs 10^15 times: each build is killed after
  ``build_timeout_s`` (422) or refused at once beyond ``build_concurrency`` + ``build_queue`` (429 with
  Retry-After), while ``/v2/health/ready`` and ``/v2/health/live`` keep answering within 100 ms;
- a torch registration naming ``os:abort`` as its module factory: refused (422) before anything is imported.

Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from server_harness import ServeProcess, build_logreg
from tiny_models import looping_onnx

BUILD_TIMEOUT_S = 1
UPLOADS = 50
PROBE_LIMIT_S = 0.1
_URL = re.compile(r"modelyard serving on (http://127\.0\.0\.1:\d+)")




def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (children, their children, …), read from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def in_session(sid: int) -> set[int]:
    """Living processes of session ``sid`` (the server was started in a session of its own)."""
    members = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[3]) == sid:
                members.add(int(entry))
    return members


def _settle(check: Any, timeout: float = 15.0) -> Any:
    """Poll ``check()`` until it is truthy (bounded); its last value."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(0.05)
        value = check()
    return value


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``modelyard serve --dev --port 0`` with a one-second build timeout; yields (process, base URL)."""
    base = tmp_path_factory.mktemp("hostile")
    config = base / "modelyard.toml"
    config.write_text(f'[platform]\ndata_dir = "{base / "data"}"\nlog_level = "warning"\n'
                      f"build_timeout_s = {BUILD_TIMEOUT_S}\nbuild_concurrency = 2\nbuild_queue = 8\n")
    server = ServeProcess(config, 0, base / "serve.log").start()
    try:
        deadline = time.monotonic() + 60
        while not (found := _URL.search(server.output())):
            assert server.proc is not None and server.proc.poll() is None, server.output()
            assert time.monotonic() < deadline, "the server did not announce its URL"
            time.sleep(0.05)
        url = found[1]
        with httpx.Client(timeout=5) as http:
            _settle(lambda: http.get(f"{url}/v2/health/ready").status_code == 200, 60)
        yield server, url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("hostile-models")
    return {"loop": looping_onnx(base / "loop.onnx"), "logreg": build_logreg(base / "logreg.onnx")}


def _register(url: str, name: str, path: Path, **fields: str) -> httpx.Response:
    with path.open("rb") as fh:
        return httpx.post(f"{url}/api/v1/models", data={"name": name, "flavor": "onnx", **fields},
                          files={"file": (path.name, fh)}, timeout=60)


#: Sends the uploads from a process of its own, so that building 50 requests does not hold this process's GIL
#: while it times the probes. Prints one JSON line: [[status, Retry-After, detail], …].
_UPLOADER = """
import asyncio, json, sys
import httpx

async def main(url, path, n):
    data = open(path, "rb").read()
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=n + 5)) as http:
        responses = await asyncio.gather(*(
            http.post(url + "/api/v1/models", data={"name": f"hostile-{i}", "flavor": "onnx"},
                      files={"file": ("loop.onnx", data)}) for i in range(n)))
    print(json.dumps([[r.status_code, r.headers.get("retry-after"), r.json().get("detail", "")]
                      for r in responses]))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def test_concurrent_hostile_uploads_neither_hang_nor_starve_the_server(hostile_server, models):
    server, url = hostile_server
    assert models["loop"].stat().st_size < 400
    # A normal registration first: it starts the forkserver, which (with its resource tracker) stays.
    assert _register(url, "warmup", models["logreg"]).status_code == 201
    baseline = descendants(server.proc.pid)

    # The attacker would be on another machine; here it shares two cores with the server, so it runs niced
    # (as the build children do) to keep the test about the server's own behaviour, not CPU contention.
    uploader = subprocess.Popen([sys.executable, "-c", _UPLOADER, url, str(models["loop"]), str(UPLOADS)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: os.nice(10))
    probes: list[tuple[str, int, float]] = []
    in_flight_children = 0
    try:
        with httpx.Client(timeout=10) as http:
            http.get(f"{url}/v2/health/live")  # open the keep-alive connection before measuring
            deadline = time.monotonic() + 120
            while uploader.poll() is None and time.monotonic() < deadline:
                for path in ("/v2/health/ready", "/v2/health/live"):
                    started = time.perf_counter()
                    status = http.get(f"{url}{path}").status_code
                    probes.append((path, status, time.perf_counter() - started))
                in_flight_children = max(in_flight_children, len(descendants(server.proc.pid) - baseline))
                time.sleep(0.01)
        out, err = uploader.communicate(timeout=30)
    finally:
        if uploader.poll() is None:
            uploader.kill()
    assert uploader.returncode == 0, err
    results = json.loads(out)
    assert len(results) == UPLOADS

    # The probes ran while builds were in flight, and every one of them answered at once.
    assert in_flight_children >= 1, "no build process was seen: the probes did not overlap the builds"
    assert len(probes) >= 20
    assert {status for _, status, _ in probes} == {200}
    slowest = max(probes, key=lambda p: p[2])
    assert slowest[2] < PROBE_LIMIT_S, f"{slowest[0]} took {slowest[2] * 1000:.0f} ms"

    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {422, 429}, statuses
    assert 429 in statuses and 422 in statuses
    assert statuses.count(422) <= 2 + 8  # build_concurrency + build_queue were let in
    for status, retry_after, detail in results:
        if status == 422:
            assert f"validation did not finish within {BUILD_TIMEOUT_S} s (build_timeout_s)" in detail
        else:
            assert int(retry_after) >= 1 and "build_queue" in detail

    with httpx.Client(timeout=10) as http:
        listed = http.get(f"{url}/api/v1/models").json()
    assert [m["name"] for m in listed["items"]] == ["warmup"]  # nothing hostile was recorded
    assert _settle(lambda: descendants(server.proc.pid) == baseline), "build processes were left behind"
    assert _register(url, "after", models["logreg"]).status_code == 201  # and the server still builds


def test_os_abort_as_a_module_factory_is_refused_and_the_server_lives(hostile_server, tmp_path):
    pytest.importorskip("torch")
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    server, url = hostile_server
    weights = tmp_path / "weights.safetensors"
    safetensors_numpy.save_file({"hidden.weight": np.zeros((8, 4), np.float32)}, str(weights))
    with weights.open("rb") as fh:
        response = httpx.post(f"{url}/api/v1/models", timeout=60,
                              data={"name": "evil", "flavor": "torch",
                                    "options": '{"module_factory": "os:abort", "input_spec": '
                                               '[{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]}'},
                              files={"file": ("weights.safetensors", fh)})
    assert response.status_code == 422, response.text
    body = response.json()
    assert "'os:abort' is not allowed" in body["detail"] and "[builders.torch] module_factories" in body["detail"]
    assert server.proc.poll() is None
    with httpx.Client(timeout=10) as http:
        assert http.get(f"{url}/v2/health/live").status_code == 200
        assert http.get(f"{url}/api/v1/models/evil").status_code == 404


def test_the_server_stops_promptly_and_leaves_no_process(hostile_server):
    server, _ = hostile_server
    sid = server.proc.pid  # started with start_new_session: its pid is the session id
    assert len(in_session(sid)) >= 2  # the server and its forkserver (started by the uploads)
    started = time.monotonic()
    os.kill(server.proc.pid, signal.SIGTERM)
    server.proc.wait(timeout=30)
    assert time.monotonic() - started < 30
    assert _settle(lambda: not in_session(sid)), f"left running: {in_session(sid)}"
