"""Per-request ids: every HTTP request gets one, bound into the log context and echoed in ``X-Request-Id``.

The id is the caller's ``X-Request-Id`` when it is a sane token (1 to 128 characters of ``[A-Za-z0-9._-]``, so a
log line cannot be forged or bloated through it), otherwise a generated one: a random per-process prefix and a
counter — unique across processes and restarts without a ``uuid4`` (an ``os.urandom`` call) per request.

The wrapper goes around the whole Litestar handler (:func:`install`), outside the router and every exception
handler: Litestar applies middleware per route, so a route middleware would miss the router's own 404/405 answers
and the log lines its exception handlers write after the middleware returned. The id is bound with
``structlog.contextvars`` and reset (not cleared) afterwards, so nothing leaks to the next request on the same
event loop and ids bound by an embedding caller survive. Problem answers read it back with
:func:`current_request_id`.
"""

from __future__ import annotations

import contextvars
import itertools
import re
import secrets
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-Id"
_HEADER_KEY = b"x-request-id"  # ASGI servers hand header names over lower-cased
_SANE = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_PREFIX = secrets.token_hex(6)
_COUNTER = itertools.count(1)
# structlog's own context variable for ``request_id`` (what ``bind_contextvars(request_id=…)`` sets), taken from
# a binding made in a throw-away context: setting and resetting it directly costs a fraction of a microsecond,
# bind_contextvars/reset_contextvars about two (a dict and a format per call) — this runs on every prediction.
_VAR: contextvars.ContextVar[Any] = contextvars.Context().run(
    structlog.contextvars.bind_contextvars, request_id=None)["request_id"].var


def new_request_id() -> str:
    """A fresh id: this process's random prefix and a counter (``3f9a1c0e77b2-1a``)."""
    return f"{_PREFIX}-{next(_COUNTER):x}"


def request_id_from(headers: Any) -> bytes:
    """The caller's ``X-Request-Id`` (raw ASGI header pairs) when it is a sane token, else a new id (as bytes)."""
    for name, value in headers:
        if name == _HEADER_KEY:
            if _SANE.fullmatch(value):
                return value
            break
    return new_request_id().encode()


def current_request_id() -> str | None:
    """The id of the request being handled in this context (None outside a request)."""
    value = _VAR.get()
    return value if isinstance(value, str) else None  # structlog's "unbound" is Ellipsis


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Wrap ``app``: bind the request id for everything ``app`` does and add ``X-Request-Id`` to the response."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        raw = request_id_from(scope["headers"])
        token = _VAR.set(raw.decode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (_HEADER_KEY, raw)]  # type: ignore[typeddict-unknown-key]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            _VAR.reset(token)

    return middleware


def install(app: Any) -> Any:
    """Put :func:`request_id_middleware` around a Litestar app's whole handler (router and exception handlers)."""
    app.asgi_handler = request_id_middleware(app.asgi_handler)
    return app
