"""Per-process scratch directories (:mod:`modelyard.scratch`): what a crashed process left is swept at the next
start, while the scratch of a process that is still running survives every sweep, however they interleave."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelyard.scratch import (
    DEFAULT_MAX_AGE,
    LOCK_NAME,
    PARTIAL_MAX_AGE,
    STAGING_MAX_AGE,
    STAGING_PREFIX,
    WORK_NAME,
    Scratch,
    sweep,
    sweep_partials,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")

# A process that opens a scratch, starts a build in it, says where, and waits to be killed.
_HOLDER = textwrap.dedent("""
    import sys, tempfile, time
    from pathlib import Path
    from modelyard.scratch import Scratch

    scratch = Scratch.open(sys.argv[1])
    build = Path(tempfile.mkdtemp(prefix="build-", dir=scratch.path))
    (build / "model.onnx").write_bytes(b"half a model")
    print(scratch.root, flush=True)
    time.sleep(600)
""")


def _start_holder(data_dir: Path) -> tuple[subprocess.Popen[str], Path]:
    # structlog is not configured in the child, so its debug lines go to stdout: the path is the last line.
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(data_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        candidate = Path(line.strip())
        if candidate.is_absolute() and candidate.parent == data_dir / "tmp":
            return proc, candidate
    raise AssertionError(f"the holder ended without opening a scratch (exit {proc.wait()})")


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    """Subprocesses to kill at the end, whatever happened."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait(timeout=30)


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (then, then), follow_symlinks=False)


def test_a_scratch_is_a_locked_directory_of_its_own_removed_on_close(tmp_path: Path) -> None:
    one = Scratch.open(tmp_path)
    two = Scratch.open(tmp_path)
    assert one.root != two.root and one.root.parent == two.root.parent == tmp_path / "tmp"
    assert one.root.name.startswith(f"{os.getpid()}-") and (one.root / LOCK_NAME).is_file()
    assert one.path == one.root / WORK_NAME and list(one.path.iterdir()) == []  # the lock is not in the way
    work = Path(tempfile.mkdtemp(prefix="build-", dir=one.path))
    (work / "model.onnx").write_bytes(b"weights")

    assert sweep(tmp_path / "tmp") == []  # both are held, by this very process
    assert work.exists()
    one.close()
    one.close()  # idempotent
    assert one.closed and not one.root.exists() and two.path.exists()
    with two:
        pass
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_killed_process_leftovers_go_at_the_next_start_a_live_one_stays(tmp_path: Path, holders) -> None:
    dead, dead_path = _start_holder(tmp_path)
    live, live_path = _start_holder(tmp_path)
    holders += [dead, live]
    assert (dead_path / LOCK_NAME).exists() and any(dead_path.glob("work/build-*/model.onnx"))

    dead.send_signal(signal.SIGKILL)  # no chance to clean up
    dead.wait(timeout=30)
    assert dead_path.exists()

    mine = Scratch.open(tmp_path)  # the next start sweeps first
    try:
        assert not dead_path.exists()
        assert live_path.exists() and any(live_path.glob("work/build-*/model.onnx"))
        assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == sorted([live_path.name, mine.root.name])
        assert sweep(tmp_path / "tmp") == []  # a later sweep by a live process removes nothing live
    finally:
        mine.close()
    assert live.poll() is None


def test_age_does_not_matter_to_a_live_scratch(tmp_path: Path, holders) -> None:
    live, live_path = _start_holder(tmp_path)
    holders.append(live)
    _age(live_path, DEFAULT_MAX_AGE * 10)  # a week-long build is still a live build
    assert sweep(tmp_path / "tmp", max_age=1) == []
    assert any(live_path.glob("work/build-*/model.onnx"))


def test_concurrent_sweeps_never_touch_live_scratches(tmp_path: Path) -> None:
    """Sweeps race scratches being opened, used and closed: no live scratch ever loses a file."""
    (tmp_path / "tmp").mkdir()
    stop = threading.Event()
    sweeps: list[int] = []
    failures: list[BaseException] = []

    def sweeper() -> None:
        while not stop.is_set():
            sweep(tmp_path / "tmp", max_age=0)  # even with no grace for anything it does not recognise
            sweeps.append(1)

    churn = textwrap.dedent("""
        import sys
        from modelyard.scratch import Scratch
        for i in range(150):
            scratch = Scratch.open(sys.argv[1], sweep_first=i % 2 == 0)
            f = scratch.path / "upload.bin"
            f.write_bytes(b"x" * 100)
            assert f.read_bytes() == b"x" * 100, "a live scratch lost its file"
            assert (scratch.root / ".lock").exists(), "a live scratch lost its lock"
            scratch.close()
    """)
    threads = [threading.Thread(target=sweeper) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        proc = subprocess.run([sys.executable, "-c", churn, str(tmp_path)], capture_output=True, text=True,
                              timeout=300)
        mine = [Scratch.open(tmp_path, sweep_first=False) for _ in range(20)]
        for scratch in mine:
            (scratch.path / "in-use").write_bytes(b"mine")
        time.sleep(0.2)
        for scratch in mine:
            assert (scratch.path / "in-use").read_bytes() == b"mine"
            scratch.close()
    except BaseException as exc:  # pragma: no cover - reported below
        failures.append(exc)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not failures
    assert proc.returncode == 0, proc.stderr
    assert len(sweeps) > 10
    assert list((tmp_path / "tmp").iterdir()) == []


def test_legacy_and_staging_leftovers_are_removed_by_age(tmp_path: Path) -> None:
    root = tmp_path / "tmp"
    root.mkdir()
    old_build = root / "build-abc123"  # what earlier versions wrote straight into tmp/
    (old_build / "nested").mkdir(parents=True)
    (old_build / "nested" / "model.onnx").write_bytes(b"old")
    old_upload = root / "upload.part"
    old_upload.write_bytes(b"old")
    young_build = root / "build-def456"
    young_build.mkdir()
    (young_build / "model.onnx").write_bytes(b"written a moment ago")
    crashed_start = root / f"{STAGING_PREFIX}xyz"
    crashed_start.mkdir()
    starting_now = root / f"{STAGING_PREFIX}now"
    starting_now.mkdir()
    _age(old_build, DEFAULT_MAX_AGE + 60)
    _age(old_upload, DEFAULT_MAX_AGE + 60)
    _age(young_build, DEFAULT_MAX_AGE + 60)
    os.utime(young_build / "model.onnx")  # one recent change inside keeps the whole directory
    _age(crashed_start, STAGING_MAX_AGE + 60)

    removed = sweep(root)
    assert sorted(p.name for p in removed) == sorted([old_build.name, old_upload.name, crashed_start.name])
    assert sorted(p.name for p in root.iterdir()) == sorted([young_build.name, starting_now.name])


def test_a_scratch_without_its_lock_file_is_a_leftover(tmp_path: Path) -> None:
    root = tmp_path / "tmp"
    half_removed = root / "12345-abcdef"
    half_removed.mkdir(parents=True)
    (half_removed / "model.onnx").write_bytes(b"left")
    assert sweep(root) == [half_removed] and not half_removed.exists()


def test_sweep_survives_what_it_cannot_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "tmp"
    stuck = root / "build-stuck"
    stuck.mkdir(parents=True)
    _age(stuck, DEFAULT_MAX_AGE + 60)

    def refuse(*_a: object, **_k: object) -> None:
        raise PermissionError("not allowed")

    monkeypatch.setattr("modelyard.scratch.shutil.rmtree", refuse)
    assert sweep(root) == []
    assert sweep(tmp_path / "absent") == []


def test_partial_downloads_in_the_cache_are_removed_by_age(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    digest = "ab" * 32
    stale = cache / f".{digest}.{'0' * 32}.part"
    live = cache / f".{digest}.{'1' * 32}.part"
    artifact = cache / digest
    lookalike = cache / "notes.part"
    for path in (stale, live, artifact, lookalike):
        path.write_bytes(b"bytes")
    for path in (stale, artifact, lookalike):
        _age(path, PARTIAL_MAX_AGE + 60)
    assert sweep_partials(cache) == [stale]
    assert sorted(p.name for p in cache.iterdir()) == sorted([live.name, artifact.name, lookalike.name])
    assert sweep_partials(tmp_path / "absent") == []


_PLATFORM_HOLDER = (
    "import sys, time\n"
    "from modelyard import Platform\n"
    "p = Platform.from_config({'platform': {'data_dir': sys.argv[1], 'log_level': 'error'}})\n"
    "(p.tmp_dir / 'upload-x').mkdir()\n"
    "print(p.tmp_dir, flush=True)\n"
    "time.sleep(600)\n"
)


def test_a_start_sweeps_a_killed_platforms_temporary_files_and_spares_a_live_ones(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from modelyard import Platform

    def start() -> tuple[subprocess.Popen[str], Path]:
        proc = subprocess.Popen([sys.executable, "-c", _PLATFORM_HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        return proc, Path(proc.stdout.readline().strip())

    dead, dead_tmp = start()
    live, live_tmp = start()
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=30)
        assert (dead_tmp / "upload-x").exists()
        with Platform.from_config({"platform": {"data_dir": str(tmp_path), "log_level": "warning"}}) as platform:
            assert not dead_tmp.exists() and (live_tmp / "upload-x").exists()
            assert list(platform.tmp_dir.iterdir()) == []
            mine = platform.tmp_dir
        assert not mine.exists() and (live_tmp / "upload-x").exists()
    finally:
        live.kill()
        live.wait(timeout=30)
