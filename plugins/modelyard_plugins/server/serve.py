"""``serve()``: assemble the platform, build the app and run it on uvicorn — what ``modelyard serve`` runs.

uvicorn runs with its fastest parts when installed (uvloop, httptools: ``loop``/``http`` ``auto``), no access
log (a log line per request would cost more than a prediction) and no logging config of its own (our logs are
structlog's). Imports are deferred to the call so that ``modelyard --help`` stays fast; the cold start to a
ready ``/v2/health/ready`` is the platform's assembly, Litestar's import and restoring the recorded deployments.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import threading
import time
from typing import Any

import structlog

log = structlog.get_logger(__name__)

# A worker process of a multi-worker server reads what to serve from these (uvicorn starts workers by import).
_ENV_CONFIG = "MODELYARD_SERVE_CONFIG"
_ENV_DEV = "MODELYARD_SERVE_DEV"


def serve(config_path: str | os.PathLike[str] | None = None, *, host: str | None = None, port: int | None = None,
          dev: bool | None = None, plugin_manager: Any = None, announce: Any = None) -> None:
    """Serve until interrupted (SIGINT/SIGTERM): graceful shutdown closes the platform.

    Args:
        config_path: the config file (None: ``$MODELYARD_CONFIG``, ``./modelyard.toml`` or the defaults).
        host, port, dev: override ``[server]`` host, port and dev (``dev=None`` keeps the config's). Port 0 picks
            a free port; the URL printed says which.
        plugin_manager: a plugin manager to assemble from (tests); None discovers the installed plugins.
        announce: called with the base URL once the server listens (default: print it to stdout).

    Raises :class:`~modelyard.errors.ConfigError` when the config is invalid, or when the auth provider lets
    everyone in and ``dev`` is off, and :class:`~modelyard.errors.Conflict` when the port is in use — all before
    the platform is assembled, so a refused start writes nothing.
    """
    from modelyard import log as logconf
    from modelyard.platform import Platform, resolve

    from modelyard_plugins.server.app import check_auth_config, create_app
    from modelyard_plugins.server.config import ServerConfig

    started = time.perf_counter()
    # Everything that can refuse the start is checked before the platform is assembled, so that a refusal
    # writes nothing (no data dir, no database, no migration) and says so at once.
    resolved = resolve(config_path, plugin_manager=plugin_manager)  # once: the platform assembles from it
    section = resolved.sections.get("server")
    settings = section if isinstance(section, ServerConfig) else ServerConfig()
    dev = settings.dev if dev is None else dev
    host = host or settings.host
    port = settings.port if port is None else port
    check_auth_config(resolved, dev=dev)
    if settings.workers > 1:
        listen_socket(host, port).close()  # uvicorn binds again in the parent; this only names a busy port
        _serve_workers(config_path, host=host, port=port, dev=dev, workers=settings.workers)
        return
    # Bound here and handed to uvicorn, so that the port checked is the port served (no race).
    sock = listen_socket(host, port)
    try:
        platform = Platform.from_resolved(resolved)
    except BaseException:
        sock.close()
        raise
    try:
        if dev and platform.config.platform.log_format == "auto":
            logconf.configure(platform.config.platform.log_level, "console")
        app = create_app(platform, dev=dev)
    except BaseException:
        sock.close()
        platform.close()
        raise

    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, loop="auto", http="auto", ws="none", lifespan="on",
                            access_log=False, log_config=None, server_header=False, timeout_graceful_shutdown=30)
    server = uvicorn.Server(config)
    threading.Thread(target=_announce_when_listening, args=(server, host, announce, started),
                     name="modelyard-announce", daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        platform.close()  # normally done by the app's shutdown hook already (idempotent)


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (as uvicorn binds it), or an error that says what to do instead.

    Raises :class:`~modelyard.errors.Conflict` when the port is in use (``pass --port …``) and
    :class:`~modelyard.errors.Unavailable` when the address cannot be bound otherwise (no such interface, a
    privileged port) — both exit code 1 from the CLI.
    """
    from modelyard.errors import Conflict, Unavailable

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a server restarted right away may rebind despite connections in TIME_WAIT, while a
        # port another process listens on still fails with EADDRINUSE.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise Conflict(f"port {port} on {host} is already in use; pass --port with a free port "
                           "(--port 0 picks one), or stop what is listening there") from None
        if exc.errno == errno.EACCES:
            raise Unavailable(f"not allowed to listen on port {port} on {host}; pass --port with a port above "
                              "1023") from None
        raise Unavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host and --port") from None
    sock.set_inheritable(True)
    return sock


def _base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _announce_when_listening(server: Any, host: str, announce: Any, started: float) -> None:
    """Wait (bounded) until uvicorn listens, then report the URL with the port actually bound."""
    deadline = time.monotonic() + 600
    while not server.started:
        if server.should_exit or time.monotonic() > deadline:
            return
        time.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1] if getattr(server, "servers", None) else server.config.port
    url = _base_url(host, port)
    log.info("serving", url=url, startup_s=round(time.perf_counter() - started, 3))
    if announce is not None:
        announce(url)
    else:
        print(f"modelyard serving on {url}  (OpenAPI: {url}/schema)", flush=True)


def _serve_workers(config_path: Any, *, host: str, port: int, dev: bool, workers: int) -> None:
    import uvicorn

    if config_path is not None:
        os.environ[_ENV_CONFIG] = os.fspath(config_path)
    os.environ[_ENV_DEV] = "1" if dev else "0"
    print(f"modelyard serving on {_base_url(host, port)} with {workers} workers", flush=True)
    uvicorn.run("modelyard_plugins.server.serve:worker_app", factory=True, host=host, port=port, workers=workers,
                loop="auto", http="auto", ws="none", lifespan="on", access_log=False, log_config=None, server_header=False)


def worker_app() -> Any:
    """The app of one worker of a multi-worker server (uvicorn's factory; reads the parent's environment)."""
    from modelyard.platform import Platform

    from modelyard_plugins.server.app import create_app

    platform = Platform.from_config(os.environ.get(_ENV_CONFIG) or None)
    try:
        return create_app(platform, dev=os.environ.get(_ENV_DEV) == "1")
    except BaseException:
        platform.close()
        raise


def _port(text: str) -> int:
    """An argparse type: a TCP port, 0-65535, in plain ASCII digits."""
    import argparse

    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> None:
    """``python -m modelyard_plugins.server.serve [-c CONFIG] [--host H] [--port P] [--dev]`` (no CLI needed)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m modelyard_plugins.server.serve", description=serve.__doc__)
    parser.add_argument("-c", "--config", default=None)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=_port, default=None)
    parser.add_argument("--dev", action="store_true", default=None)
    args = parser.parse_args(argv)
    from modelyard.errors import ConfigError, ModelyardError

    try:
        serve(args.config, host=args.host, port=args.port, dev=args.dev)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        raise SystemExit(2) from None
    except ModelyardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
