"""Server processes for the benchmarks: start in their own process group, wait for readiness, measure, stop.

Every process is started with ``start_new_session=True`` so that stopping it (SIGTERM, then SIGKILL after a grace
period) reaches whatever it spawned; :class:`Processes` stops everything it started, in reverse order, from a
``finally`` or ``with`` block.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

__all__ = ["Processes", "Server", "cpu_seconds", "free_port", "http_request", "pss_mb", "wait_for"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_request(method: str, url: str, body: Any = None, *, headers: dict[str, str] | None = None,
                 timeout: float = 10.0) -> tuple[int, bytes]:
    """One request over a fresh connection: ``(status, body)``; ``(0, b"")`` when the connection fails.

    A dict/list ``body`` is sent as JSON; bytes as they are.
    """
    rest = url.split("://", 1)[-1]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    hdrs = dict(headers or {})
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, "/" + path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


def wait_for(url: str, *, timeout: float, method: str = "GET", body: Any = None,
             headers: dict[str, str] | None = None, interval: float = 0.005,
             proc: subprocess.Popen | None = None) -> float | None:
    """Poll ``url`` until it answers 200; the seconds that took, or ``None`` after ``timeout`` (or if ``proc`` died)."""
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < timeout:
        status, _ = http_request(method, url, body, headers=headers, timeout=max(0.5, timeout - elapsed))
        if status == 200:
            return time.perf_counter() - start
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(interval)
    return None


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


def pss_mb(pid: int) -> float | None:
    """Proportional set size of ``pid`` and its descendants in MiB (``/proc/*/smaps_rollup``); ``None`` if unreadable."""
    total_kb = 0
    for p in _descendants(pid):
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            if p == pid:
                return None
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total_kb += int(line.split()[1])
                break
    return total_kb / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` (all its threads) and its live descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _descendants(pid):
        try:
            # Fields after the command name (which may contain spaces) start at field 3; utime and stime are
            # fields 14 and 15.
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


@attrs.define
class Server:
    """A started server process; ``log`` holds its stdout and stderr."""

    name: str
    proc: subprocess.Popen
    log: Path
    started_at: float  # time.perf_counter() just before Popen

    def tail(self, lines: int = 40) -> str:
        """The last lines of the process's output (for error messages)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@attrs.define
class Processes:
    """Starts server processes and guarantees they are stopped (process group, TERM then KILL)."""

    _started: list[Server] = attrs.field(factory=list)

    def start(self, name: str, cmd: Sequence[str], *, log: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> Server:
        """Start ``cmd`` in a new session (its own process group), output to ``log``."""
        fh = open(log, "wb")  # closed below, once Popen has handed it to the child
        try:
            started = time.perf_counter()
            proc = subprocess.Popen(list(cmd), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)
        finally:
            fh.close()
        server = Server(name=name, proc=proc, log=log, started_at=started)
        self._started.append(server)
        return server

    def stop(self, server: Server, grace: float = 5.0) -> None:
        """Stop one server's process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
        proc = server.proc
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # Children may outlive the leader; the group id is the leader's pid either way.
        _signal_group(proc.pid, signal.SIGKILL)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        if server in self._started:
            self._started.remove(server)

    def stop_all(self) -> None:
        """Stop every server still running, newest first."""
        for server in reversed(list(self._started)):
            self.stop(server)

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
