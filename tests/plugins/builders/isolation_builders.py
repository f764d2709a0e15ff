"""Builders that misbehave on purpose, for the build-isolation tests. Importable by name, so that a build
process (which imports what it unpickles) finds them; each writes its pid to ``workdir/pid`` first."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from modelyard.errors import ConfigError, ConfigIssue, InvalidInput, Overloaded
from modelyard.types import BuiltBundle, Signature

#: How long any of these waits at most: the tests must end even when the code under test does not.
BOUND_S = 60.0


def _started(workdir: Path) -> None:
    Path(workdir).mkdir(parents=True, exist_ok=True)
    (Path(workdir) / "pid").write_text(str(os.getpid()))


def _bundle(workdir: Path, **metadata: Any) -> BuiltBundle:
    artifact = Path(workdir) / "artifact"
    artifact.write_bytes(b"x")
    return BuiltBundle(artifact=artifact, signature=Signature((), ()), metadata={"pid": os.getpid(), **metadata})


class Reporter:
    """Reports where it ran: pid, niceness and the sockets among its open file descriptors."""

    flavor = "reporter"

    def build(self, source: Any, *, options: Any, workdir: Path) -> BuiltBundle:
        _started(workdir)
        links = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                links.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass
        return _bundle(workdir, nice=os.nice(0), sockets=[link for link in links if link.startswith("socket:")])


class Sleeper:
    """Never finishes on its own (within BOUND_S)."""

    flavor = "sleeper"

    def build(self, source: Any, *, options: Any, workdir: Path) -> BuiltBundle:
        _started(workdir)
        deadline = time.monotonic() + BOUND_S
        while time.monotonic() < deadline:
            time.sleep(0.01)
        return _bundle(workdir)


class Gate:
    """Finishes once the file ``go`` exists."""

    flavor = "gate"

    def __init__(self, go: Path) -> None:
        self.go = go

    def build(self, source: Any, *, options: Any, workdir: Path) -> BuiltBundle:
        _started(workdir)
        deadline = time.monotonic() + BOUND_S
        while not self.go.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return _bundle(workdir)


class Aborter:
    """Kills its process, as ``os:abort`` named as a module factory would."""

    flavor = "aborter"

    def build(self, source: Any, *, options: Any, workdir: Path) -> BuiltBundle:
        _started(workdir)
        os.abort()


class Raiser:
    """Raises one kind of error."""

    flavor = "raiser"

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def build(self, source: Any, *, options: Any, workdir: Path) -> BuiltBundle:
        _started(workdir)
        if self.kind == "invalid":
            raise InvalidInput("options.x: expected an integer from 1 to 4, got 9", field="options.x")
        if self.kind == "config":
            raise ConfigError([ConfigIssue(message="bad", section="builders", key="raiser.x", line=3)],
                              file="modelyard.toml")
        if self.kind == "overloaded":
            raise Overloaded("busy", retry_after=7.0)
        if self.kind == "value":
            raise ValueError("a plain bug")
        if self.kind == "exit":
            raise SystemExit(3)
        raise AssertionError(self.kind)


class Unpicklable(Reporter):
    """A builder holding a lock, which pickle refuses."""

    flavor = "unpicklable"

    def __init__(self) -> None:
        self.lock = threading.Lock()
