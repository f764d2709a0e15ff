"""``modelyard.isolation``: builds of uploaded files run in a child process with a deadline, a few at a time.

The builders here misbehave on purpose (``isolation_builders``): they loop, abort, raise, wait for a signal
from the test. Every wait is bounded.
"""

from __future__ import annotations

import multiprocessing.forkserver
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import structlog
from isolation_builders import Aborter, Gate, Raiser, Reporter, Sleeper, Unpicklable
from modelyard.config import PlatformConfig
from modelyard.errors import BuildError, ConfigError, InvalidInput, Overloaded, Unavailable
from modelyard.isolation import BuildLimits, BuildRunner, close_builds, runner_for
from modelyard.platform import Platform
from modelyard.types import BuildOptions

HERE = Path(__file__).resolve().parent


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether process ``pid`` has exited and been reaped, waiting up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.02)
    return False


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    path = tmp_path / "upload.bin"
    path.write_bytes(b"model")
    return path


def _build(runner: BuildRunner, builder, source, workdir: Path):
    return runner.build(builder, source, options=BuildOptions(), workdir=workdir)


def test_a_file_builds_in_another_process_an_object_in_this_one(upload, tmp_path):
    runner = BuildRunner()
    isolated = _build(runner, Reporter(), upload, tmp_path / "a")
    assert isolated.metadata["pid"] != os.getpid()
    assert isolated.metadata["nice"] > os.nice(0)  # builds yield the CPU to the requests being served
    assert isolated.artifact == tmp_path / "a" / "artifact" and isolated.artifact.read_bytes() == b"x"
    in_memory = _build(runner, Reporter(), object(), tmp_path / "b")
    assert in_memory.metadata["pid"] == os.getpid()


def test_a_build_past_its_deadline_is_killed(upload, tmp_path):
    runner = BuildRunner(BuildLimits(timeout_s=0.5))
    started = time.monotonic()
    with pytest.raises(BuildError, match=r"sleeper build and validation did not finish within 0\.5 s "
                                         r"\(build_timeout_s\)") as info:
        _build(runner, Sleeper(), upload, tmp_path / "w")
    assert time.monotonic() - started < 10
    assert info.value.status == 422
    pid = int((tmp_path / "w" / "pid").read_text())
    assert pid != os.getpid() and _gone(pid)


def test_a_build_that_kills_its_process_is_a_build_error(upload, tmp_path):
    with pytest.raises(BuildError, match=r"the aborter build process died \(killed by SIGABRT\)") as info:
        _build(BuildRunner(), Aborter(), upload, tmp_path / "w")
    assert info.value.status == 422
    assert _gone(int((tmp_path / "w" / "pid").read_text()))


def test_errors_come_back_as_they_were_raised(upload, tmp_path):
    runner = BuildRunner()
    with pytest.raises(InvalidInput, match="expected an integer from 1 to 4") as invalid:
        _build(runner, Raiser("invalid"), upload, tmp_path / "1")
    assert invalid.value.field == "options.x"
    with pytest.raises(ConfigError) as config:
        _build(runner, Raiser("config"), upload, tmp_path / "2")
    assert [(i.section, i.key, i.line) for i in config.value.issues] == [("builders", "raiser.x", 3)]
    assert config.value.file == "modelyard.toml"
    with pytest.raises(Overloaded) as overloaded:
        _build(runner, Raiser("overloaded"), upload, tmp_path / "3")
    assert overloaded.value.retry_after == 7.0
    with pytest.raises(ValueError, match="a plain bug") as plain:
        _build(runner, Raiser("value"), upload, tmp_path / "4")
    assert "raised in the build process" in "".join(plain.value.__notes__)
    # SystemExit must not travel into a server thread: it would end it.
    with pytest.raises(BuildError, match="the build failed: SystemExit: 3"):
        _build(runner, Raiser("exit"), upload, tmp_path / "5")


def test_the_build_process_does_not_inherit_a_listening_socket(upload, tmp_path):
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        listening.set_inheritable(True)  # even so: the child is forked from the forkserver, not from us
        inode = os.fstat(listening.fileno()).st_ino
        bundle = _build(BuildRunner(), Reporter(), upload, tmp_path / "w")
    assert bundle.metadata["pid"] != os.getpid()
    assert f"socket:[{inode}]" not in bundle.metadata["sockets"]


def test_builds_beyond_concurrency_and_queue_are_refused_at_once(upload, tmp_path):
    runner = BuildRunner(BuildLimits(timeout_s=60, concurrency=1, queue=1))
    go = tmp_path / "go"
    results: dict[str, object] = {}

    def build(key: str) -> None:
        try:
            results[key] = _build(runner, Gate(go), upload, tmp_path / key)
        except Exception as exc:
            results[key] = exc

    running = threading.Thread(target=build, args=("running",))
    running.start()
    _wait_for(lambda: (tmp_path / "running" / "pid").exists())
    waiting = threading.Thread(target=build, args=("waiting",))
    waiting.start()
    _wait_for(lambda: runner._waiting == 1)
    try:
        started = time.monotonic()
        with pytest.raises(Overloaded, match=r"build_concurrency = 1, build_queue = 1") as info:
            _build(runner, Gate(go), upload, tmp_path / "refused")
        assert time.monotonic() - started < 1.0  # at once, not after waiting
        assert info.value.status == 429 and 1.0 <= info.value.retry_after <= 60
        assert not (tmp_path / "refused").exists() and not (tmp_path / "waiting").exists()
    finally:
        go.touch()
        running.join(30)
        waiting.join(30)
    assert results["running"].metadata["pid"] != results["waiting"].metadata["pid"]  # type: ignore[union-attr]


def test_close_kills_running_builds_and_refuses_new_ones(upload, tmp_path):
    runner = BuildRunner(BuildLimits(timeout_s=60))
    outcome: list[BaseException] = []

    def build() -> None:
        try:
            _build(runner, Sleeper(), upload, tmp_path / "w")
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=build)
    thread.start()
    _wait_for(lambda: (tmp_path / "w" / "pid").exists())
    started = time.monotonic()
    runner.close()
    thread.join(30)
    assert time.monotonic() - started < 10
    assert len(outcome) == 1 and isinstance(outcome[0], Unavailable)
    assert _gone(int((tmp_path / "w" / "pid").read_text()))
    with pytest.raises(Unavailable, match="closing"):
        _build(runner, Reporter(), upload, tmp_path / "later")


def test_a_builder_that_cannot_be_pickled_builds_in_process(upload, tmp_path):
    structlog.reset_defaults()
    with structlog.testing.capture_logs() as logs:
        bundle = _build(BuildRunner(), Unpicklable(), upload, tmp_path / "w")
    assert bundle.metadata["pid"] == os.getpid()
    assert any(e["event"] == "builder or build options cannot be pickled; building in-process"
               and e["log_level"] == "debug" for e in logs)


def test_exiting_the_process_does_not_wait_for_a_running_build(tmp_path):
    """A build in flight, the forkserver and the build process all go when the interpreter exits."""
    script = textwrap.dedent(f"""
        import sys, threading, time
        from pathlib import Path
        sys.path.insert(0, {str(HERE)!r})
        import multiprocessing.forkserver
        from isolation_builders import Sleeper
        from modelyard.types import BuildOptions
        from modelyard.isolation import BuildLimits, BuildRunner

        work = Path({str(tmp_path / "w")!r})
        upload = Path({str(tmp_path / "upload.bin")!r})
        upload.write_bytes(b"model")
        runner = BuildRunner(BuildLimits(timeout_s=600))
        threading.Thread(target=runner.build, args=(Sleeper(), upload),
                         kwargs=dict(options=BuildOptions(), workdir=work), daemon=True).start()
        while not (work / "pid").exists():
            time.sleep(0.01)
        print(multiprocessing.forkserver._forkserver._forkserver_pid, flush=True)
    """)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60
    forkserver_pid = int(result.stdout.strip())
    build_pid = int((tmp_path / "w" / "pid").read_text())
    assert _gone(build_pid) and _gone(forkserver_pid)


def test_each_platform_has_a_runner_from_its_config(tmp_path):
    config = {"platform": {"data_dir": str(tmp_path / "data"), "build_timeout_s": 2.5, "build_concurrency": 3,
                           "build_queue": 0}}
    with Platform.from_config(config) as platform:
        runner = runner_for(platform)
        assert runner is runner_for(platform)
        assert runner.limits == BuildLimits(timeout_s=2.5, concurrency=3, queue=0)
        assert "modelyard_plugins.onnx_builder.warmup" in runner.preload  # the onnx builder's build_preload
        close_builds(platform)
        with pytest.raises(Unavailable):
            _build(runner, Reporter(), tmp_path, tmp_path / "w")
        assert runner_for(platform) is not runner  # a new one, should the platform build again
    assert BuildLimits.from_config(PlatformConfig()) == BuildLimits(timeout_s=60.0, concurrency=2, queue=8)


def test_the_forkserver_is_started_once_per_process(upload, tmp_path):
    runner = BuildRunner()
    _build(runner, Reporter(), upload, tmp_path / "1")
    first = multiprocessing.forkserver._forkserver._forkserver_pid
    _build(BuildRunner(), Reporter(), upload, tmp_path / "2")
    assert first is not None and multiprocessing.forkserver._forkserver._forkserver_pid == first
