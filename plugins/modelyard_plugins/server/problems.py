"""Exceptions → RFC 9457 problem-details answers (``application/problem+json``), in one place.

Every answer has ``type``, ``title``, ``status`` and ``detail``, plus ``field``/``input`` when the error names
one, and ``error`` (the detail again) because V2 clients such as tritonclient show a failed request's
``error`` member, and ``request_id`` (the request's ``X-Request-Id``, which the log lines of the request carry
too). A :class:`~modelyard.errors.ModelyardError` keeps its own ``status`` and title; a V2
:class:`~modelyard.protocol.v2.CodecError` its status; Litestar's own errors (unknown route, validation, body
too large) their status. Two kinds of error no handler anticipates are still the caller's or the disk's, not a
bug: a ``RecursionError`` (a JSON body nested past the parser's limit) is a 400, and an ``OSError`` saying the disk
or quota is full (ENOSPC, EDQUOT) a 503 ``insufficient-storage``. Anything else is a 500 whose answer holds no
traceback or message — the exception is logged here, with the request's method and path, instead. A detail that
cannot be written as UTF-8 (a name with a lone surrogate) is escaped rather than turned into a second error.
"""

from __future__ import annotations

import errno
import math
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from modelyard import log as logconf
from modelyard.errors import (
    CODEC_ERROR,
    HTTP_PROBLEM_TYPES,
    ConfigError,
    InvalidInput,
    ModelyardError,
    Overloaded,
    QuotaExceeded,
    Unavailable,
    problem_type_uri,
)
from modelyard.protocol.v2 import MAX_JSON_DEPTH, CodecError

from modelyard_plugins.server.request_ids import current_request_id

log = structlog.get_logger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

_TITLES = {400: "Bad request", 401: "Unauthenticated", 403: "Forbidden", 404: "Not found",
           405: "Method not allowed", 409: "Conflict", 413: "Content too large", 415: "Unsupported media type",
           422: "Invalid input", 429: "Too many requests", 500: "Internal error", 503: "Service unavailable"}
_ENCODER = msgspec.json.Encoder()
#: errno values meaning "no space left": the disk (ENOSPC) or the user's quota (EDQUOT).
NO_SPACE = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None)


def problem(status: int, detail: str, *, title: str | None = None, kind: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> Response[bytes]:
    """A problem+json response; ``kind`` is the type's slug (default: the status's, ``HTTP_PROBLEM_TYPES``),
    ``extra`` adds members. Problem types are defined in :mod:`modelyard.errors`, where the client reads them."""
    detail = logconf.redact(detail)
    body: dict[str, Any] = {"type": problem_type_uri(kind or HTTP_PROBLEM_TYPES.get(status, "error")),
                            "title": title or _TITLES.get(status, "Error"), "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    body["error"] = detail
    request_id = current_request_id()
    if request_id is not None:  # lets a user match a 500 with the server's log line for it
        body["request_id"] = request_id
    try:
        content = _ENCODER.encode(body)
    except UnicodeEncodeError:  # a lone surrogate in a detail or member: escape it, keep the answer
        content = _ENCODER.encode({k: _escaped(v) for k, v in body.items()})
    return Response(content=content, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    return value


def _request_fields(request: Request) -> dict[str, Any]:
    return {"method": request.scope.get("method"), "path": request.scope.get("path")}


def modelyard_error(request: Request, exc: ModelyardError) -> Response[bytes]:
    """Any :class:`ModelyardError`: its status and title, ``field``/``input`` when known, Retry-After on 429
    (overloaded, and a quota exceeded when it knows when the quota resets)."""
    status = exc.status
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidInput) and exc.field:
        extra["field"] = exc.field
        if exc.field.startswith("inputs."):
            extra["input"] = exc.field.removeprefix("inputs.")
    if isinstance(exc.extra.get("input"), str):
        extra["input"] = exc.extra["input"]
    if isinstance(exc, Overloaded | QuotaExceeded) and exc.retry_after is not None:
        # Retry-After takes whole seconds (RFC 9110); the exact figure goes in the body.
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        extra["retry_after"] = exc.retry_after
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    detail = exc.report() if isinstance(exc, ConfigError) else exc.message
    if status >= 500:
        log.error("request failed", error=type(exc).__name__, detail=detail, **_request_fields(request))
    return problem(status, detail, title=exc.title, kind=exc.problem_type, headers=headers or None,
                   **extra)


def codec_error(request: Request, exc: CodecError) -> Response[bytes]:
    """A V2 body that could not be decoded (400/422), or an output the codec could not encode (500)."""
    if exc.status >= 500:
        log.error("could not encode a V2 response", detail=exc.detail, **_request_fields(request))
        return problem(500, "the model's outputs could not be encoded as V2 tensors: " + exc.detail,
                       kind=CODEC_ERROR, input=exc.input)
    return problem(exc.status, exc.detail, kind=CODEC_ERROR if exc.status == 400 else InvalidInput.problem_type,
                   input=exc.input)


def http_error(request: Request, exc: HTTPException) -> Response[bytes]:
    """Litestar's own errors: unknown route (404), wrong method (405), body too large (413), validation (400)."""
    status = exc.status_code
    extra: dict[str, Any] = {}
    detail = exc.detail or _TITLES.get(status, "Error")
    if isinstance(exc, ValidationException) and exc.extra:
        extra["errors"] = exc.extra if isinstance(exc.extra, list) else [exc.extra]
        first = extra["errors"][0] if isinstance(extra["errors"][0], dict) else {}
        if first.get("key"):
            extra["field"] = str(first["key"])
            if first.get("message"):
                detail = f"{detail}: {first['key']}: {first['message']}"
    if status == 413:
        detail = "the request body is larger than this server accepts"
    if status >= 500:
        log.error("request failed", error=type(exc).__name__, detail=exc.detail, **_request_fields(request))
        detail = _TITLES.get(status, "Error")
    return problem(status, detail, headers=dict(exc.headers) if exc.headers else None, **extra)


def unexpected_error(request: Request, exc: Exception) -> Response[bytes]:
    """Anything else: logged with its traceback here, answered as a bare 500 (no message, no traceback) — but
    a RecursionError (input nested too deeply for a parser) is a 400 and a full disk a 503."""
    if isinstance(exc, RecursionError):
        return problem(400, "the request nests values too deeply to be read; JSON bodies may nest arrays and "
                            f"objects at most {MAX_JSON_DEPTH} levels deep", kind=HTTP_PROBLEM_TYPES[400])
    if isinstance(exc, OSError) and exc.errno in NO_SPACE:
        return insufficient_storage(request, exc)
    log.error("unhandled error", error=type(exc).__name__, exc_info=exc, **_request_fields(request))
    return problem(500, "an unexpected error occurred; the server log has the details")


def insufficient_storage(request: Request, exc: OSError) -> Response[bytes]:
    """A full disk or quota wherever it happens: 503, logged, nothing about the server's paths in the answer."""
    log.error("insufficient storage", error=type(exc).__name__, errno=exc.errno, **_request_fields(request))
    return problem(503, "insufficient storage: the server's disk or quota is full; try again later",
                   title=Unavailable.title, kind=Unavailable.problem_type)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ModelyardError: modelyard_error,
    CodecError: codec_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
