"""Per-process scratch directories under ``<data_dir>/tmp`` that the next start can clean up safely.

Uploads in flight and builds work in temporary files. A process that crashes (SIGKILL, OOM, power loss) leaves
them behind, and several processes may share one data dir at once — two ``modelyard serve`` processes, or a
server and the CLI — so a start-up sweep must tell a dead process's leftovers from a live one's files. Layout::

    <data_dir>/tmp/<pid>-<random>/         one per live process (Scratch.root)
    <data_dir>/tmp/<pid>-<random>/.lock    locked with fcntl.flock(LOCK_EX) for the whole life of the process
    <data_dir>/tmp/<pid>-<random>/work/    where the process writes (Scratch.path): nothing else is in it
    <data_dir>/tmp/.staging-<random>/      a scratch being set up (renamed into place once locked)

The kernel releases a ``flock`` when its process dies, however it dies, so :func:`sweep` removes exactly the
subdirectories whose lock it can take. A scratch is created under a ``.staging-`` name and renamed into place
only once its lock is held, so no sweep ever sees a live scratch unlocked. Anything else in ``tmp/`` (loose
files and directories written there by earlier versions, staging directories of a crashed start) is removed
once nothing in it changed for ``max_age`` seconds.

The lock is an advisory ``flock``: it works on local filesystems and on NFS (Linux emulates it with NFS byte-range
locks); where ``fcntl`` does not exist, scratches are only ever removed by age.

:func:`sweep_partials` does the same for the partial downloads an interrupted ``ArtifactStore.get`` leaves in
the artifact cache, by age alone.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import attrs
import structlog

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

log = structlog.get_logger(__name__)

LOCK_NAME = ".lock"
WORK_NAME = "work"
STAGING_PREFIX = ".staging-"
#: Seconds without a change after which an entry of ``tmp/`` that no live scratch owns is a leftover.
DEFAULT_MAX_AGE = 24 * 3600.0
#: A staging directory lives for microseconds; one older than this belongs to a start that crashed.
STAGING_MAX_AGE = 600.0
_SCRATCH_NAME = re.compile(r"\d+-[0-9a-f]+")


@attrs.define
class Scratch:
    """This process's own directory under ``<data_dir>/tmp``, locked until :meth:`close` or the process's end.

    Build with :meth:`open`. Everything a process writes temporarily (build work dirs, streamed uploads) goes
    under :attr:`path`, e.g. ``tempfile.mkdtemp(prefix="build-", dir=scratch.path)``. :meth:`close` removes
    it; so does a normal interpreter exit, and a crash leaves it to the next :func:`sweep`.
    """

    #: The directory to write in (empty when opened; the lock file is beside it, not in it).
    path: Path
    #: The scratch's own directory under ``<data_dir>/tmp``: :attr:`path` and the lock file.
    root: Path
    _fd: int = attrs.field(repr=False, alias="fd")
    _pid: int = attrs.field(repr=False, alias="pid")
    _closed: bool = attrs.field(default=False, init=False, repr=False)

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], *, sweep_first: bool = True,
             max_age: float = DEFAULT_MAX_AGE) -> Scratch:
        """Create and lock a new scratch under ``<data_dir>/tmp``, sweeping dead processes' leftovers first.

        Args:
            data_dir: the platform's data dir; ``tmp/`` is created in it when missing.
            sweep_first: run :func:`sweep` on ``tmp/`` before creating this process's scratch.
            max_age: passed to :func:`sweep`.
        """
        root = Path(data_dir) / "tmp"
        root.mkdir(parents=True, exist_ok=True)
        if sweep_first:
            sweep(root, max_age=max_age)
        # Set up under a name sweeps leave alone for a while, and renamed into place only once locked: no sweep
        # can ever see this scratch with its lock free.
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
        fd = -1
        try:
            fd = os.open(staging / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a file nobody else has opened yet
            (staging / WORK_NAME).mkdir()
            final = root / f"{os.getpid()}-{secrets.token_hex(6)}"
            while final.exists():  # pragma: no cover - a 48-bit collision
                final = root / f"{os.getpid()}-{secrets.token_hex(6)}"
            os.rename(staging, final)  # the lock belongs to the open file, so it moves with it
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if fd >= 0:
                os.close(fd)
            raise
        scratch = cls(path=final / WORK_NAME, root=final, fd=fd, pid=os.getpid())
        # Held for the life of the process unless closed; a normal exit cleans up too.
        atexit.register(scratch.close)
        log.debug("scratch opened", path=str(final))
        return scratch

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran (the directory is gone and the lock released)."""
        return self._closed

    def close(self) -> None:
        """Remove the scratch (:attr:`root`, everything in it), then release its lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        if os.getpid() != self._pid:
            return  # a forked child shares the lock but does not own the directory
        shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self._fd)  # releases the lock, after the removal, so no sweep races the rmtree

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _newest_change(path: Path) -> float:
    """The latest mtime of ``path`` and (for a directory) anything under it; symlinks are not followed."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path):
            for name in (*dirnames, *filenames):
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
    return newest


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False  # another sweeper was faster
    except OSError as exc:
        log.warning("could not remove a stale temporary file", path=str(path), error=str(exc))
        return False
    return True


def _sweep_scratch(path: Path) -> bool:
    """Remove a ``<pid>-<random>`` scratch if no process holds its lock; True when it was removed."""
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDWR)
    except FileNotFoundError:
        # Scratches appear with their lock file already locked, so one without is a half-removed leftover.
        return _remove(path) if path.exists() else False
    except OSError as exc:
        log.warning("could not inspect a scratch directory", path=str(path), error=str(exc))
        return False
    try:
        if fcntl is None:  # pragma: no cover - not POSIX: age decides
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # held: its process is alive (or another sweeper is removing it right now)
        # Locked by us now, so its owner is dead and no other sweeper can be half-way through it.
        return _remove(path)
    finally:
        os.close(fd)


def sweep(tmp_root: str | os.PathLike[str], *, max_age: float = DEFAULT_MAX_AGE) -> list[Path]:
    """Remove what crashed processes left in ``tmp_root``; returns the paths removed.

    A ``<pid>-<random>`` scratch is removed when its lock is free (its process is gone), at once and whatever
    its age; one whose lock is held is never touched. A ``.staging-`` directory is removed after
    :data:`STAGING_MAX_AGE` seconds, anything else (files and directories of earlier versions, which used
    ``tmp/`` directly) once nothing in it changed for ``max_age`` seconds. Errors are logged, never raised:
    a sweep must not stop a start.
    """
    root = Path(tmp_root)
    try:
        entries = sorted(root.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("could not list the temporary directory", path=str(root), error=str(exc))
        return []
    now = time.time()
    removed: list[Path] = []
    for entry in entries:
        name = entry.name
        try:
            if _SCRATCH_NAME.fullmatch(name) and entry.is_dir() and not entry.is_symlink() and fcntl is not None:
                gone = _sweep_scratch(entry)
            else:
                limit = STAGING_MAX_AGE if name.startswith(STAGING_PREFIX) else max_age
                gone = now - _newest_change(entry) > limit and _remove(entry)
        except FileNotFoundError:
            continue
        if gone:
            removed.append(entry)
    if removed:
        log.info("removed temporary files left by processes that ended", path=str(root), count=len(removed),
                 removed=[p.name for p in removed])
    return removed


#: ``ArtifactStore.get`` streams into ``.<name>.<32 hex>.part`` beside its destination, then renames it.
_PARTIAL = re.compile(r"\..+\.[0-9a-f]{32}\.part")
#: A download writes every chunk it reads; one unchanged for an hour belongs to a process that died.
PARTIAL_MAX_AGE = 3600.0


def sweep_partials(directory: str | os.PathLike[str], *, max_age: float = PARTIAL_MAX_AGE) -> list[Path]:
    """Remove the partial downloads (``.<name>.<hex>.part``) an interrupted ``get`` left in ``directory`` (the
    platform's artifact cache), once unchanged for ``max_age`` seconds; returns the paths removed.

    Downloads into a shared cache have no owner to ask, so age decides: a live one keeps writing. Other files
    are never touched. Errors are logged, never raised.
    """
    root = Path(directory)
    try:
        entries = [e for e in root.iterdir() if _PARTIAL.fullmatch(e.name)]
    except OSError:
        return []
    now = time.time()
    removed = []
    for entry in entries:
        try:
            stale = entry.is_file() and not entry.is_symlink() and now - entry.stat().st_mtime > max_age
        except OSError:
            continue
        if stale and _remove(entry):
            removed.append(entry)
    if removed:
        log.info("removed partial downloads left by processes that ended", path=str(root), count=len(removed))
    return removed


__all__ = ["DEFAULT_MAX_AGE", "LOCK_NAME", "PARTIAL_MAX_AGE", "STAGING_MAX_AGE", "WORK_NAME", "Scratch", "sweep",
           "sweep_partials"]
