"""The exceptions every part of modelyard raises.

Each carries enough to render an RFC 9457 problem-details answer (``status``, ``title``, ``problem_type``) and
to pick a CLI exit code, so the server and the CLI map errors in one place instead of guessing from messages.

Problem types are defined here once: the server names an answer's ``type`` with :func:`problem_type_uri` (the
class's ``problem_type``, or :data:`HTTP_PROBLEM_TYPES` for an HTTP error no exception class stands for) and the
client turns it back into the class with :func:`error_class`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs


class ModelyardError(Exception):
    """Base of every error modelyard raises on purpose."""

    status: int = 500
    title: str = "Internal error"
    #: The slug of the problem ``type`` the server answers with (``urn:modelyard:problem:<slug>``); subclasses
    #: inherit their parent's unless they name their own.
    problem_type: str = "modelyard-error"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def __str__(self) -> str:
        return self.message


class InvalidInput(ModelyardError):
    """An argument was malformed: a bad name, tag, tensor or option. ``field`` names the culprit."""

    status = 422
    title = "Invalid input"
    problem_type = "invalid-input"

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.field = field


class NotFound(ModelyardError):
    """The named model, version, alias, deployment, artifact or secret does not exist."""

    status = 404
    title = "Not found"
    problem_type = "not-found"


class Conflict(ModelyardError):
    """The operation clashes with the current state (e.g. a deployment of that name exists)."""

    status = 409
    title = "Conflict"
    problem_type = "conflict"


class IntegrityError(ModelyardError):
    """Stored bytes do not match their recorded sha256 digest."""

    status = 500
    title = "Artifact integrity check failed"
    problem_type = "integrity-error"


class BuildError(ModelyardError):
    """A builder could not turn an upload into a valid bundle; the message says why."""

    status = 422
    title = "Build failed"
    problem_type = "build-error"


class PluginError(ModelyardError):
    """A plugin could not be loaded, or two plugins clash; names the plugin and the remedy."""

    title = "Plugin error"
    problem_type = "plugin-error"


class Unavailable(ModelyardError):
    """A dependency (runtime, database, storage) cannot serve the request right now."""

    status = 503
    title = "Service unavailable"
    problem_type = "unavailable"


class Overloaded(ModelyardError):
    """Back-pressure: a queue is full. ``retry_after`` (seconds) becomes the HTTP Retry-After header."""

    status = 429
    title = "Too many requests"
    problem_type = "overloaded"

    def __init__(self, message: str, *, retry_after: float = 1.0, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after = retry_after


class QuotaExceeded(ModelyardError):
    """The principal (or its team) has used up a billing quota. ``retry_after`` (seconds until the quota resets,
    when known) becomes the HTTP Retry-After header. Not back-pressure: retrying sooner does not help."""

    status = 429
    title = "Quota exceeded"
    problem_type = "quota-exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after = retry_after


class Forbidden(ModelyardError):
    """The principal may not perform this action on this resource."""

    status = 403
    title = "Forbidden"
    problem_type = "forbidden"


class Unauthenticated(ModelyardError):
    """No valid credentials were presented."""

    status = 401
    title = "Unauthenticated"
    problem_type = "unauthenticated"


@attrs.frozen(kw_only=True)
class ConfigIssue:
    """One problem in a config: where it is, what was given and what was expected."""

    message: str
    section: str | None = None
    key: str | None = None
    line: int | None = None
    file: str | None = None
    given: Any = None

    def location(self) -> str:
        """``[section] key`` as the report prints it."""
        where = f"[{self.section}]" if self.section else ""
        return f"{where} {self.key}".strip() if self.key else where


class ConfigError(ModelyardError):
    """A config failed validation. Carries *all* issues found, so one run reports everything."""

    status = 422
    title = "Invalid configuration"
    problem_type = "config-error"

    def __init__(self, issues: Iterable[ConfigIssue], *, file: str | None = None) -> None:
        self.issues: Sequence[ConfigIssue] = tuple(issues)
        self.file = file
        super().__init__(self.report())

    def report(self) -> str:
        """The human report: a header line, then one aligned line per issue."""
        name = self.file or "config"
        n = len(self.issues)
        lines = [f"{name}: {n} error{'s' if n != 1 else ''}"]
        width = max((len(i.location()) for i in self.issues), default=0)
        for issue in self.issues:
            line = f"line {issue.line}" if issue.line else ""
            lines.append(f"  {line:<8} {issue.location():<{width}}  {issue.message}".rstrip())
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------- problem types
#: What every problem ``type`` starts with: ``urn:modelyard:problem:not-found``.
PROBLEM_TYPE_PREFIX = "urn:modelyard:problem:"
#: A V2 inference body (or output) the Open Inference Protocol codec could not read or write.
CODEC_ERROR = "codec-error"
#: The problem type of an HTTP error that no exception class stands for (an unknown route, a body too large,
#: the web framework's own validation), by status; other statuses are ``error``.
HTTP_PROBLEM_TYPES: dict[int, str] = {
    400: "bad-request", 401: Unauthenticated.problem_type, 403: Forbidden.problem_type, 404: NotFound.problem_type,
    405: "method-not-allowed", 409: Conflict.problem_type, 413: "content-too-large", 415: "unsupported-media-type",
    422: InvalidInput.problem_type, 429: "too-many-requests", 500: "internal-error", 503: "service-unavailable",
}
_CLASSES: tuple[type[ModelyardError], ...] = (
    ModelyardError, InvalidInput, NotFound, Conflict, IntegrityError, BuildError, PluginError, Unavailable,
    Overloaded, QuotaExceeded, Forbidden, Unauthenticated, ConfigError,
)
#: Every problem type a modelyard server answers with, and the exception a client raises for it. A ConfigError
#: (the server's view of its config) and the HTTP errors of the caller's request are the caller's InvalidInput.
_BY_TYPE: dict[str, type[ModelyardError]] = {
    **{cls.problem_type: cls for cls in _CLASSES}, ConfigError.problem_type: InvalidInput, CODEC_ERROR: InvalidInput,
    "bad-request": InvalidInput, "method-not-allowed": InvalidInput, "content-too-large": InvalidInput,
    "unsupported-media-type": InvalidInput, "too-many-requests": Overloaded, "internal-error": ModelyardError,
    "service-unavailable": Unavailable,
}


def problem_type_uri(problem_type: str) -> str:
    """``not-found`` → ``urn:modelyard:problem:not-found``, the ``type`` member of a problem answer."""
    return PROBLEM_TYPE_PREFIX + problem_type


def error_class(problem_type: str) -> type[ModelyardError] | None:
    """The exception class for a problem type — its slug or its whole URI — or None for a type not ours."""
    return _BY_TYPE.get(problem_type.removeprefix(PROBLEM_TYPE_PREFIX))


def error_class_for_status(status: int) -> type[ModelyardError] | None:
    """The exception class for an HTTP status without a problem body (a proxy's answer), or None."""
    slug = HTTP_PROBLEM_TYPES.get(status)
    return _BY_TYPE.get(slug) if slug is not None else None
