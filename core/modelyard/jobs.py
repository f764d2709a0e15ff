"""Job kinds: the named, JSON-parametrised work a scheduler runs, and the JSON form of a job record.

Jobs are plain data (DESIGN "plain data across processes"). A caller submits a job kind *by name* with JSON
params; the scheduler checks the params against the kind before it queues anything, keeps them in a
:class:`~modelyard.types.Job` record, and when the job runs looks the kind up by name again, converts the params
and calls ``kind.run(params, ctx)``. Nothing but the name and the JSON is needed to run a job, so a job can be
persisted, resumed after a crash, or shipped to a worker in another process that has the same plugins installed.

Plugins offer kinds through the ``modelyard_job_kinds`` hook; :class:`JobKinds` is the catalogue a scheduler
looks them up in; :func:`job_to_json` and :func:`job_from_json` convert the record.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from modelyard.config import structure
from modelyard.converter import from_json, to_json
from modelyard.errors import InvalidInput
from modelyard.types import Job, check_json

if TYPE_CHECKING:
    from modelyard.platform import Platform

_KIND = re.compile(r"^[a-z][a-z0-9_-]{0,63}(?:\.[a-z][a-z0-9_-]{0,63}){0,3}$")


def check_kind_name(value: object) -> str:
    """Job kind names: lowercase identifiers, optionally dotted to namespace a plugin's kinds (``acme.retrain``)."""
    if not isinstance(value, str) or not _KIND.match(value):
        raise ValueError(f"job kind name {value!r} must match {_KIND.pattern}")
    return value


class JobCancelled(Exception):
    """Raised inside a job whose cancellation was requested, at its next cooperative check."""


def _never() -> bool:
    return False


@attrs.frozen(kw_only=True)
class JobContext:
    """What a job kind's ``run`` receives besides its params.

    ``job`` is the record as this attempt started (id, kind, JSON params, ``attempts`` counting this one);
    ``platform`` is the assembled platform when the scheduler runs inside one, None when a scheduler runs on its
    own; ``hook`` is the plugin manager's hook relay, or None. A long job calls :meth:`raise_if_cancelled` where
    stopping is safe; a cancelled job is not retried.
    """

    job: Job
    platform: Platform | None = None
    hook: Any = None
    is_cancelled: Callable[[], bool] = _never

    def raise_if_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if someone cancelled this job."""
        if self.is_cancelled():
            raise JobCancelled(f"job {self.job.id} was cancelled")


def _attrs_class_or_none(_inst: Any, _attr: Any, value: object) -> None:
    if value is not None and not (isinstance(value, type) and attrs.has(value)):
        raise TypeError(f"params_schema must be an attrs class (or None), got {value!r}")


@attrs.frozen(kw_only=True)
class JobKind:
    """A kind of job a plugin offers through ``modelyard_job_kinds``: its name, what runs, and its params.

    ``run(params, ctx)`` does the work and returns a JSON object (the job's ``result``), ``None``, or another
    JSON value (stored as ``{"value": ...}``); it raises to fail the attempt, which the scheduler retries when
    the submitter asked for retries. ``params`` is an instance of ``params_schema`` — a frozen attrs class the
    submitted JSON is converted into with the config's strict converter (``"42"`` is not an integer, unknown keys
    are refused) — or the JSON object itself when the kind declares no schema. ``validate(params)``, if given,
    runs after the conversion and raises ``ValueError`` (or :class:`~modelyard.errors.InvalidInput`) for params
    that are well-typed but wrong. Both run when the job is submitted, so bad params never reach a queue.
    """

    name: str = attrs.field(validator=lambda _i, _a, v: check_kind_name(v))
    run: Callable[[Any, JobContext], Any] = attrs.field(validator=attrs.validators.is_callable())
    params_schema: type | None = attrs.field(default=None, validator=_attrs_class_or_none)
    validate: Callable[[Any], object] | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.is_callable()))
    description: str = ""

    def check_params(self, params: object) -> tuple[dict[str, Any], Any]:
        """Check submitted params: JSON first, then ``params_schema``, then ``validate``.

        Returns ``(data, params)``: the params as plain JSON (what the job record keeps) and what ``run``
        receives. Raises :class:`~modelyard.errors.InvalidInput` whose ``field`` names the culprit, e.g.
        ``params.epochs``; every schema problem is in the message.
        """
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise InvalidInput(f"params of job kind {self.name!r}: expected a JSON object, got a "
                               f"{type(params).__name__}", field="params")
        data = check_json(params, field="params")
        typed: Any = data
        if self.params_schema is not None:
            typed, issues = structure(data, self.params_schema, section="params", lines={}, file=None)
            if issues:
                fields = [f"params.{i.key}" if i.key else "params" for i in issues]
                detail = "; ".join(f"{f}: {i.message}" for f, i in zip(fields, issues, strict=True))
                raise InvalidInput(f"params of job kind {self.name!r}: {detail}", field=fields[0])
        if self.validate is not None:
            try:
                self.validate(typed)
            except InvalidInput:
                raise
            except (ValueError, TypeError) as exc:
                raise InvalidInput(f"params of job kind {self.name!r}: {exc}", field="params") from exc
        return data, typed


@attrs.frozen(kw_only=True)
class JobKindEntry:
    """A job kind and the plugin (and distribution) that offered it."""

    kind: JobKind
    plugin: str
    distribution: str | None = None


@attrs.define(eq=False)
class JobKinds:
    """The job kinds a scheduler can run, by name.

    :meth:`from_plugin_manager` collects ``modelyard_job_kinds`` at once — so two plugins offering one name stop
    assembly with an error naming both (STYLE 9) — and again whenever plugins were registered or unregistered
    since, so that a kind offered by a plugin registered after assembly (an observer, a test plugin) is found.
    :meth:`of` makes a fixed catalogue (embedding, tests). Thread-safe.
    """

    _plugin_manager: Any = None
    _fixed: Mapping[str, JobKindEntry] = attrs.field(factory=dict)
    _entries: Mapping[str, JobKindEntry] = attrs.field(init=False, factory=dict)
    _seen: tuple[Any, ...] | None = attrs.field(init=False, default=None)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)

    @classmethod
    def of(cls, *kinds: JobKind) -> JobKinds:
        """A fixed catalogue of ``kinds`` (no plugin manager); two kinds with one name are a ValueError."""
        entries: dict[str, JobKindEntry] = {}
        for kind in kinds:
            if kind.name in entries:
                raise ValueError(f"two job kinds are named {kind.name!r}")
            entries[kind.name] = JobKindEntry(kind=kind, plugin="(given)")
        return cls(fixed=entries)

    @classmethod
    def from_plugin_manager(cls, plugin_manager: Any) -> JobKinds:
        """The kinds the plugin manager's plugins offer, collected now and kept up to date."""
        kinds = cls(plugin_manager=plugin_manager)
        kinds.entries()
        return kinds

    def entries(self) -> Mapping[str, JobKindEntry]:
        """Every kind by name, with the plugin that offers it."""
        if self._plugin_manager is None:
            return self._fixed
        impls = tuple(self._plugin_manager.hook.modelyard_job_kinds.get_hookimpls())
        with self._lock:
            seen = self._seen
            if seen is None or len(seen) != len(impls) or any(a is not b for a, b in zip(seen, impls, strict=True)):
                # Imported here: modelyard.plugins imports the hookspecs, which import this module.
                from modelyard.plugins import collect_job_kinds

                self._entries = collect_job_kinds(self._plugin_manager)
                self._seen = impls
            return self._entries

    def names(self) -> list[str]:
        """The installed kinds' names, sorted."""
        return sorted(self.entries())

    def get(self, name: object) -> JobKind:
        """The kind called ``name``; :class:`~modelyard.errors.InvalidInput` (field ``kind``) naming the
        installed kinds when there is none."""
        entries = self.entries()
        entry = entries.get(name) if isinstance(name, str) else None
        if entry is None:
            known = sorted(entries)
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6) if isinstance(name, str) else []
            hint = f" — did you mean {close[0]!r}?" if close else ""
            raise InvalidInput(f"job kind {name!r:.80} is not installed (installed: {', '.join(known) or 'none'})"
                               f"{hint}", field="kind")
        return entry.kind


# --------------------------------------------------------------------------------------------- JSON
def job_to_json(job: Job) -> dict[str, Any]:
    """A job as JSON data — every field, timestamps in ISO 8601 UTC; ``json.dumps`` takes it as is.

    :func:`job_from_json` turns it back into an equal record, so this is the form to persist or ship a job in
    (it is :func:`modelyard.converter.to_json`'s, the form the server answers with too).
    """
    return to_json(job)


def job_from_json(data: Mapping[str, Any]) -> Job:
    """The job that :func:`job_to_json` made ``data`` from.

    Raises :class:`~modelyard.errors.InvalidInput` (field ``job``, or the JSON field at fault) for anything else:
    an unknown key or state, a missing field, a number where text belongs, a timestamp without an offset.
    """
    return from_json(Job, data, what="job")


__all__ = ["JobCancelled", "JobContext", "JobKind", "JobKindEntry", "JobKinds", "check_kind_name", "job_from_json",
           "job_to_json"]
