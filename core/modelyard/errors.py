"""The exceptions every part of modelyard raises.

Each carries enough to render an RFC 9457 problem-details answer (``status``, ``title``) and to pick a CLI exit
code, so the server and the CLI map errors in one place instead of guessing from messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs


class ModelyardError(Exception):
    """Base of every error modelyard raises on purpose."""

    status: int = 500
    title: str = "Internal error"

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

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.field = field


class NotFound(ModelyardError):
    """The named model, version, alias, deployment, artifact or secret does not exist."""

    status = 404
    title = "Not found"


class Conflict(ModelyardError):
    """The operation clashes with the current state (e.g. a deployment of that name exists)."""

    status = 409
    title = "Conflict"


class IntegrityError(ModelyardError):
    """Stored bytes do not match their recorded sha256 digest."""

    status = 500
    title = "Artifact integrity check failed"


class BuildError(ModelyardError):
    """A builder could not turn an upload into a valid bundle; the message says why."""

    status = 422
    title = "Build failed"


class PluginError(ModelyardError):
    """A plugin could not be loaded, or two plugins clash; names the plugin and the remedy."""

    title = "Plugin error"


class Unavailable(ModelyardError):
    """A dependency (runtime, database, storage) cannot serve the request right now."""

    status = 503
    title = "Service unavailable"


class Overloaded(ModelyardError):
    """Back-pressure: a queue is full. ``retry_after`` (seconds) becomes the HTTP Retry-After header."""

    status = 429
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after: float = 1.0, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after = retry_after


class Forbidden(ModelyardError):
    """The principal may not perform this action on this resource."""

    status = 403
    title = "Forbidden"


class Unauthenticated(ModelyardError):
    """No valid credentials were presented."""

    status = 401
    title = "Unauthenticated"


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
