"""Structured logging: JSON off a TTY, console on one, secrets redacted from every line.

Every module does ``log = structlog.get_logger(__name__)``; :func:`configure` is called once per process by the
CLI, the server or ``Platform.from_config`` (idempotent). Request and operation ids are bound with
``structlog.contextvars.bind_contextvars`` so every line of one request carries them.

A one-shot CLI command talks to a person, not to a log collector: it holds the configuration with :func:`pin`
at warnings and errors in the ``plain`` format (``warning: <event> (key=value, …)``, one line each), so that
``Platform.from_config`` cannot switch JSON records back on behind its back, and releases it with :func:`unpin`.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_configured: tuple[str, str, Any] | None = None
#: Set by pin(): the configuration held, and the one to restore on unpin().
_pinned: tuple[tuple[str, str, Any], tuple[str, str, Any] | None] | None = None
REDACTED = "***"
#: Event keys the plain format leaves out: a person reading one line does not need them.
_PLAIN_SKIP = ("timestamp", "level", "event", "exception", "stack", "operation_id", "command", "request_id")


def register_secret(value: str) -> None:
    """Remember a secret value so that no log line ever shows it (short values are ignored: too many hits)."""
    if isinstance(value, str) and len(value) >= 4:
        with _LOCK:
            _SECRETS.add(value)


def redact(text: str) -> str:
    """Replace every registered secret in ``text``."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_nested(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {_redact_nested(k): _redact_nested(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_nested(v) for v in value] if isinstance(value, list) else tuple(
            _redact_nested(v) for v in value)
    return value


def _redact_processor(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if not _SECRETS:
        return event_dict
    for key, value in list(event_dict.items()):
        if isinstance(value, str):
            event_dict[key] = redact(value)
        elif isinstance(value, dict | list | tuple):
            # Walk containers: their str() escapes quotes and non-ASCII, hiding a secret from a textual search
            # while the JSON renderer would still print it.
            cleaned = _redact_nested(value)
            rendered = str(cleaned)  # objects other than strings inside: fall back to their text
            event_dict[key] = redact(rendered) if redact(rendered) != rendered else cleaned
        elif isinstance(value, Exception):
            rendered = str(value)
            cleaned = redact(rendered)
            if cleaned != rendered:
                event_dict[key] = cleaned
    return event_dict


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is *now*: test runners and daemons swap it, and a logger bound to the
    old object would write into a closed stream."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


_STDERR = _CurrentStderr()


def _plain_renderer(_logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> str:
    """``warning: could not remove a stale temporary file (path=/x, error=…)``: one line for a person."""
    level = str(event_dict.get("level") or name)
    details = ", ".join(f"{k}={v}" for k, v in event_dict.items() if k not in _PLAIN_SKIP)
    line = f"{level}: {event_dict.get('event', '')}" + (f" ({details})" if details else "")
    exception = str(event_dict.get("exception") or "").strip()
    if exception:  # the traceback's last line says what happened; the rest is for -v
        line += f" — {exception.splitlines()[-1]}"
    return " ".join(line.split())  # one line, whatever the values hold


def pin(level: str = "warning", fmt: str = "plain", *, stream: Any = None) -> None:
    """Configure logging and hold it: until :func:`unpin`, :func:`configure` calls change nothing.

    ``fmt`` may also be ``plain``: one short line per event and no JSON, for a command-line user.
    """
    global _pinned
    previous = _pinned[1] if _pinned is not None else _configured
    _pinned = None
    configure(level, fmt, stream=stream)
    _pinned = (_configured or (level, fmt, stream), previous)


def unpin() -> None:
    """Release :func:`pin` and restore the configuration in force before it (if any). Idempotent."""
    global _pinned, _configured
    if _pinned is None:
        return
    previous = _pinned[1]
    _pinned = None
    if previous is not None:
        _configured = None
        configure(*previous[:2], stream=previous[2])


def pinned() -> bool:
    """Whether :func:`pin` holds the configuration."""
    return _pinned is not None


def configure(level: str = "info", fmt: str = "auto", *, stream: Any = None) -> None:
    """Configure structlog (and stdlib logging through it). ``fmt``: ``auto`` (console on a TTY), json, console,
    plain (see :func:`pin`). Does nothing while :func:`pin` holds the configuration.

    Without ``stream`` lines go to the current ``sys.stderr``, whatever it is at the time of each line.
    """
    global _configured
    if _pinned is not None:
        return
    stream = stream or _STDERR
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    # The stream is part of the key: a caller that swapped sys.stderr (a test runner, a daemon) must not keep
    # logging into the old, possibly closed, stream.
    if _configured is not None and _configured[:2] == (level, fmt) and _configured[2] is stream:
        return
    _configured = (level, fmt, stream)
    renderer: Any = (structlog.dev.ConsoleRenderer(colors=stream.isatty()) if fmt == "console"
                     else _plain_renderer if fmt == "plain" else structlog.processors.JSONRenderer())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        # Render tracebacks to text *before* redaction, in both formats, so a secret in an exception message is
        # redacted too (the console renderer would otherwise format exc_info after our processor ran).
        structlog.processors.format_exc_info,
        _redact_processor,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
