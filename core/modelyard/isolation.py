"""Bounded builds: each registration's build and validation runs in a child process with a deadline, and only a
few run at once.

A build runs code an upload chose: an ONNX graph can loop for ever, a converter can spin, a module factory can
abort. So :class:`BuildRunner` runs ``builder.build(path, options=..., workdir=...)`` in a child process forked
from a **forkserver** (a clean single-threaded process started once per server process, with numpy, onnx and
onnxruntime preloaded — never a plain fork of the multi-threaded server) and kills it when
``[platform] build_timeout_s`` passes. At most ``build_concurrency`` builds run at once and at most
``build_queue`` more wait for a slot; beyond that a registration is refused at once with
:class:`~modelyard.errors.Overloaded` (HTTP 429 with Retry-After), so no number of uploads can take every worker
thread of the server.

Only uploads that are files or directories cross into a child: in-memory sources (an ``nn.Module``, a fitted
estimator, bytes passed by a library caller) and builders that cannot be pickled are built in the calling
process, still within the concurrency limit but without a deadline.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Iterator
from multiprocessing import context as mp_context
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import structlog

from modelyard.errors import BuildError, ModelyardError, Overloaded, Unavailable

if TYPE_CHECKING:
    from modelyard.types import BuildOptions, BuiltBundle

log = structlog.get_logger(__name__)

#: Imported once by the forkserver, so that every build child starts with them loaded. Builders add their own
#: with a ``build_preload`` attribute (the ``onnx`` builder: onnx, onnxruntime and a warm-up). torch and
#: tensorflow are imported by the children that use them: preloading them would cost every server hundreds of
#: megabytes.
PRELOAD = ("modelyard.isolation", "modelyard.bundles", "modelyard.hookspecs.builder", "numpy", "numpy.random")
#: The niceness build processes run at (the server's own requests come first).
BUILD_NICENESS = 10
#: How long a child that has sent its result may take to exit before it is killed.
_EXIT_GRACE_S = 2.0


@attrs.frozen(kw_only=True)
class BuildLimits:
    """How long one build may run, how many run at once and how many may wait (``[platform]`` settings)."""

    timeout_s: float = 60.0
    concurrency: int = 2
    queue: int = 8

    @classmethod
    def from_config(cls, platform_config: Any) -> BuildLimits:
        """The limits of a :class:`~modelyard.config.PlatformConfig` (defaults for what it lacks)."""
        default = cls()
        return cls(timeout_s=getattr(platform_config, "build_timeout_s", default.timeout_s),
                   concurrency=getattr(platform_config, "build_concurrency", default.concurrency),
                   queue=getattr(platform_config, "build_queue", default.queue))


# --------------------------------------------------------------------------------------------- the child process
class _Popen(popen_forkserver.Popen):
    """The forkserver launcher, except that the child does not re-run the parent's ``__main__``.

    multiprocessing re-imports the main script in every child (spawn semantics) so that objects defined there
    can be unpickled. A build child needs nothing from it, and re-running it would cost every build the import
    of whatever the script imports (pytest, the CLI) — or run an unguarded embedding script a second time.
    """

    def _launch(self, process_obj: Any) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        buf = io.BytesIO()
        mp_context.set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            mp_context.set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)  # type: ignore[attr-defined]
        # As the base class does: a duplicate of the data pipe's write end tells the child its parent is alive.
        _parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))  # type: ignore[attr-defined]
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _BuildProcess(mp_context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _Popen(process_obj)


def _child_main(payload: bytes, conn: multiprocessing.connection.Connection, log_settings: tuple[str, str] | None,
                sys_path: list[str] | None = None) -> None:
    """Entry point of a build child: unpickle the job, build, send back ``(status, value)``.

    ``sys_path`` is the server's import path at the time of the build: the forkserver was forked once, maybe
    before the server's path grew (plugins added later), and the builder must unpickle the same way here."""
    try:
        if sys_path is not None:
            sys.path[:] = sys_path
        with contextlib.suppress(OSError):  # born niced from the forkserver; this covers any other start
            if os.getpriority(os.PRIO_PROCESS, 0) < BUILD_NICENESS:
                os.setpriority(os.PRIO_PROCESS, 0, BUILD_NICENESS)
        if log_settings is not None:
            from modelyard import log as logconf

            logconf.configure(*log_settings)
        try:
            builder, source, options, workdir = pickle.loads(payload)
        except Exception as exc:
            conn.send_bytes(pickle.dumps(("unpicklable", f"{type(exc).__name__}: {exc}")))
            return
        try:
            result: tuple[str, Any] = ("ok", builder.build(source, options=options, workdir=workdir))
        except BaseException as exc:
            result = ("error", _describe(exc))
        try:
            data = pickle.dumps(result)
        except Exception as exc:
            data = pickle.dumps(("error", ("foreign", "BuildError", f"the build result cannot be sent back to "
                                           f"the server: {type(exc).__name__}: {exc}", "")))
        conn.send_bytes(data)
    finally:
        conn.close()


def _describe(exc: BaseException) -> tuple[Any, ...]:
    """An exception as plain data: ModelyardErrors with their state (their ``__init__`` signatures vary, so
    ordinary pickling cannot rebuild them all), anything else pickled when it round-trips, else its text."""
    tb = "".join(traceback.format_exception(exc))
    if not isinstance(exc, Exception):  # SystemExit, KeyboardInterrupt: must not end a server thread
        return ("foreign", type(exc).__name__, str(exc), tb)
    if isinstance(exc, ModelyardError):
        try:
            state = pickle.dumps((type(exc), exc.args, dict(vars(exc))))
            return ("modelyard", state, tb)
        except Exception:
            return ("foreign", type(exc).__name__, str(exc), tb)
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
        return ("pickled", data, tb)
    except Exception:
        return ("foreign", type(exc).__name__, str(exc), tb)


def _rebuild(desc: tuple[Any, ...]) -> BaseException:
    """The exception :func:`_describe` described, as the parent raises it."""
    kind = desc[0]
    if kind == "modelyard":
        cls, args, state = pickle.loads(desc[1])
        exc = cls.__new__(cls)
        Exception.__init__(exc, *args)
        exc.__dict__.update(state)
        return exc
    if kind == "pickled":
        exc = pickle.loads(desc[1])
        exc.add_note("raised in the build process:\n" + desc[2])
        return exc
    _, name, message, tb = desc
    if tb:
        log.warning("build failed in its process", error=f"{name}: {message}", traceback=tb)
    return BuildError(f"the build failed: {name}: {message}" if name != "BuildError" else message)


# --------------------------------------------------------------------------------------------- the forkserver
_CONTEXT_LOCK = threading.Lock()
_CONTEXT: Any = None


def _context(preload: tuple[str, ...] = ()) -> Any:
    """The forkserver context; None where forkserver does not exist. The forkserver is one per process: the
    modules to preload are those of the first call (:data:`PRELOAD` plus ``preload``)."""
    global _CONTEXT
    with _CONTEXT_LOCK:
        if _CONTEXT is None:
            if "forkserver" not in multiprocessing.get_all_start_methods():
                _CONTEXT = False
            else:
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(list(dict.fromkeys((*PRELOAD, *preload))))
                _CONTEXT = ctx
        return _CONTEXT or None


def _start_forkserver() -> None:
    """Start the forkserver (again, should it have died) and lower its priority, so that build processes are
    born niced: builds are background work, and under load the CPU goes to the requests being answered."""
    forkserver.ensure_running()
    pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    if pid is not None:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, max(os.getpriority(os.PRIO_PROCESS, pid), BUILD_NICENESS))


def isolatable(source: Any) -> bool:
    """Whether a build of ``source`` can run in a child process: files and directories can, objects cannot."""
    return isinstance(source, os.PathLike)


# --------------------------------------------------------------------------------------------- the runner
class BuildRunner:
    """Runs builds within :class:`BuildLimits`: in a child process with a deadline, a few at a time."""

    def __init__(self, limits: BuildLimits | None = None, *, preload: tuple[str, ...] = ()) -> None:
        self.limits = limits or BuildLimits()
        self.preload = preload
        self._cond = threading.Condition()
        self._running = 0
        self._waiting = 0
        self._closed = False
        self._children: set[Any] = set()
        self._recent_s = 1.0  # moving average of build durations, for Retry-After

    # ------------------------------------------------------------------------------------------- admission
    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        limits = self.limits
        with self._cond:
            if self._closed:
                raise Unavailable("the platform is closing; no new builds start")
            if self._running >= limits.concurrency:
                if self._waiting >= limits.queue:
                    waves = (self._waiting + self._running) / limits.concurrency
                    retry = max(1.0, min(limits.timeout_s, self._recent_s * waves))
                    raise Overloaded(f"{self._running} builds are running and {self._waiting} are waiting "
                                     f"(build_concurrency = {limits.concurrency}, build_queue = {limits.queue}); "
                                     "retry later", retry_after=round(retry, 1))
                self._waiting += 1
                try:
                    while self._running >= limits.concurrency and not self._closed:
                        self._cond.wait()
                finally:
                    self._waiting -= 1
                if self._closed:
                    raise Unavailable("the platform is closing; no new builds start")
            self._running += 1
        started = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._recent_s = 0.8 * self._recent_s + 0.2 * (time.monotonic() - started)
                self._cond.notify()

    # ------------------------------------------------------------------------------------------- builds
    def build(self, builder: Any, source: Any, *, options: BuildOptions, workdir: Path) -> BuiltBundle:
        """``builder.build(source, options=options, workdir=workdir)`` within the limits.

        Raises :class:`~modelyard.errors.Overloaded` when the queue is full, and
        :class:`~modelyard.errors.BuildError` when the build runs past ``timeout_s`` (its process is killed)
        or its process dies; the builder's own errors are raised as they are.
        """
        with self._slot():
            if isolatable(source) and not multiprocessing.current_process().daemon:
                # (A daemonic process may not start processes: it builds in-process.)
                payload = self._payload(builder, source, options, workdir)
                ctx = _context(self.preload) if payload is not None else None
                if ctx is not None and payload is not None:
                    done, result = self._in_child(ctx, payload, flavor=getattr(builder, "flavor", "?"))
                    if done:
                        return result
                    # Not isolated, so not bounded in time: say so where operators look.
                    log.warning("the builder cannot be unpickled in a build process; building in-process, "
                                "without the build time limit", flavor=getattr(builder, "flavor", None),
                                error=result)
            return builder.build(source, options=options, workdir=workdir)

    @staticmethod
    def _payload(builder: Any, source: Any, options: BuildOptions, workdir: Path) -> bytes | None:
        if getattr(type(builder), "__module__", None) == "__main__":
            log.debug("builder class lives in __main__, which build processes do not import; building in-process",
                      builder=type(builder).__qualname__)
            return None
        try:
            return pickle.dumps((builder, Path(source), options, Path(workdir)), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            log.debug("builder or build options cannot be pickled; building in-process",
                      flavor=getattr(builder, "flavor", None), error=f"{type(exc).__name__}: {exc}")
            return None

    def _in_child(self, ctx: Any, payload: bytes, *, flavor: str) -> tuple[bool, Any]:
        """(True, bundle) after a build in a child process; (False, reason) when the child could not unpickle
        the job. Raises the build's error, or BuildError on a timeout or a dead child."""
        from modelyard import log as logconf

        timeout = self.limits.timeout_s
        settings = logconf._configured[:2] if logconf._configured is not None else None
        reader, writer = ctx.Pipe(duplex=False)
        proc = _BuildProcess(target=_child_main, args=(payload, writer, settings, list(sys.path)), daemon=True,
                             name=f"modelyard-build-{flavor}")
        started = False
        try:
            with self._cond:
                if self._closed:
                    raise Unavailable("the platform is closing; no new builds start")
                self._children.add(proc)
            try:
                _start_forkserver()
                proc.start()
            except (OSError, EOFError) as exc:  # no processes or descriptors left, or the forkserver died
                raise Unavailable(f"cannot start a build process: {type(exc).__name__}: {exc} (a module in a "
                                  "builder's build_preload that fails to import stops the forkserver)") from exc
            started = True
            writer.close()
            ready = multiprocessing.connection.wait([reader, proc.sentinel], timeout)
            if not ready:
                proc.kill()
                raise BuildError(f"{flavor} build and validation did not finish within {timeout:g} s "
                                 "(build_timeout_s); its process was stopped. A model that legitimately takes "
                                 "longer needs a larger [platform] build_timeout_s")
            status, value = self._receive(reader)
            if status == "died":
                proc.join(_EXIT_GRACE_S)
                if self._closed:
                    raise Unavailable("the platform closed while the build was running")
                raise BuildError(f"the {flavor} build process died ({_exit_text(proc.exitcode)}) before it "
                                 f"finished{value}; the upload crashed or exhausted the builder")
            if status == "unpicklable":
                return False, value
            if status == "error":
                raise _rebuild(value)
            return True, value
        finally:
            writer.close()
            reader.close()
            if started:
                proc.join(_EXIT_GRACE_S)
                if proc.exitcode is None:
                    proc.kill()
                    proc.join(_EXIT_GRACE_S)
            with self._cond:
                self._children.discard(proc)
            if started and proc.exitcode is not None:
                proc.close()

    @staticmethod
    def _receive(reader: Any) -> tuple[str, Any]:
        """What the child sent, or ("died", detail) when it sent nothing readable."""
        if not reader.poll():
            return "died", ""
        try:
            data = reader.recv_bytes()
        except (EOFError, OSError):
            return "died", ""
        try:
            return pickle.loads(data)
        except Exception as exc:  # e.g. a result holding a class the server cannot import
            return "died", f" (its result could not be read: {type(exc).__name__}: {exc})"

    # ------------------------------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Refuse new builds, wake the waiting ones (they raise Unavailable) and kill running build processes."""
        with self._cond:
            self._closed = True
            children = list(self._children)
            self._cond.notify_all()
        for proc in children:
            with contextlib.suppress(Exception):
                proc.kill()


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


# --------------------------------------------------------------------------------------------- per platform
_RUNNERS: weakref.WeakKeyDictionary[Any, BuildRunner] = weakref.WeakKeyDictionary()
_RUNNERS_LOCK = threading.Lock()


def runner_for(platform: Any) -> BuildRunner:
    """The platform's build runner, made from its ``[platform]`` config on first use and closed with it."""
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(platform)
        if runner is None:
            config = getattr(getattr(platform, "config", None), "platform", None)
            builders = getattr(platform, "builders", None) or {}
            preload = tuple(m for b in builders.values() for m in getattr(b, "build_preload", ()))
            runner = _RUNNERS[platform] = BuildRunner(BuildLimits.from_config(config), preload=preload)
            weakref.finalize(platform, runner.close)
    return runner


def close_builds(platform: Any) -> None:
    """Stop the platform's builds (what :meth:`Platform.close` calls); a no-op when it never built anything."""
    with _RUNNERS_LOCK:
        runner = _RUNNERS.pop(platform, None)
    if runner is not None:
        runner.close()


def run_build(platform: Any, builder: Any, source: Any, *, options: BuildOptions, workdir: Path) -> BuiltBundle:
    """Build ``source`` with ``builder`` within the platform's build limits (see :class:`BuildRunner`)."""
    return runner_for(platform).build(builder, source, options=options, workdir=workdir)


__all__ = ["PRELOAD", "BuildLimits", "BuildRunner", "close_builds", "isolatable", "run_build", "runner_for"]
