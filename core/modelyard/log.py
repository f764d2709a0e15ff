"""Structured logging: JSON off a TTY, console on one, secrets redacted from every line.

Every module does ``log = structlog.get_logger(__name__)``; :func:`configure` is called once per process by the
CLI, the server or ``Platform.from_config`` (idempotent). Request and operation ids are bound with
``structlog.contextvars.bind_contextvars`` so every line of one request carries them.
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
_configured: tuple[str, str] | None = None
REDACTED = "***"


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


def _redact_processor(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if not _SECRETS:
        return event_dict
    for key, value in list(event_dict.items()):
        if isinstance(value, str):
            event_dict[key] = redact(value)
        elif isinstance(value, Exception | dict | list | tuple):
            rendered = str(value)
            cleaned = redact(rendered)
            if cleaned != rendered:
                event_dict[key] = cleaned
    return event_dict


def configure(level: str = "info", fmt: str = "auto", *, stream: Any = None) -> None:
    """Configure structlog (and stdlib logging through it). ``fmt``: ``auto`` (console on a TTY), json, console."""
    global _configured
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    if _configured == (level, fmt):
        return
    _configured = (level, fmt)
    renderer: Any = (structlog.dev.ConsoleRenderer(colors=stream.isatty()) if fmt == "console"
                     else structlog.processors.JSONRenderer())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info if fmt == "json" else structlog.processors.StackInfoRenderer(),
        _redact_processor,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
