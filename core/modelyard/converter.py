"""Domain records ⇄ JSON: the one converter that the server, the client, the CLI and persisted jobs share.

:func:`to_json` turns a record (:class:`~modelyard.types.Model`, :class:`~modelyard.types.ModelVersion`,
:class:`~modelyard.types.Page`, :class:`~modelyard.types.Deployment`, :class:`~modelyard.types.Job`, …) into plain
JSON data that ``json.dumps`` takes as is; :func:`from_json` turns that data back into an equal record. Both
are one cattrs converter, built here from the config's strict one (no coercion: ``"3"`` is not an integer,
``3`` is not a string), so serialisation lives outside the domain classes (STYLE 13) and each record has exactly
one JSON form — what the server answers with, what :class:`~modelyard.client.Client` reads and what the CLI's
``--json`` prints.

The JSON form is the record's fields by name, with these exceptions (the wire format the server has always had):

- timestamps are ISO 8601 strings in UTC (``2024-05-01T12:00:00.123456+00:00``); reading one needs its offset;
- a :class:`~modelyard.types.ModelVersion`'s ``number`` is ``"version"``, its key order follows the server's;
- an :class:`~modelyard.types.ArtifactRef` adds its ``uri`` (``sha256:<digest>``);
- a :class:`~modelyard.types.Lineage` is :meth:`~modelyard.types.Lineage.to_dict`'s flat object (empty fields
  left out, ``extra`` keys beside the known ones);
- tuples are lists and mappings are objects.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from modelyard.config import make_converter
from modelyard.errors import InvalidInput
from modelyard.types import ArtifactRef, AuditEvent, Job, Lineage, ModelVersion

T = TypeVar("T")

#: The key order of records whose JSON keys do not follow their fields' order (the server's answers always
#: had this order; the set of keys is the record's).
_KEY_ORDER: dict[type, tuple[str, ...]] = {
    ModelVersion: ("model", "version", "flavor", "artifact", "signature", "requirements", "tags", "lineage",
                   "aliases", "metadata", "description", "created_at"),
    AuditEvent: ("at", "principal", "action", "resource", "outcome", "source", "details"),
    Job: ("id", "kind", "state", "params", "result", "error", "attempts", "retries", "created_at", "updated_at",
          "started_at", "finished_at"),
}
#: Fields whose JSON name differs from the attribute's.
_RENAMES: dict[type, dict[str, str]] = {ModelVersion: {"number": "version"}}
#: Attribute → JSON name, to name the JSON key in an error's path (cattrs names the attribute).
_WIRE_NAMES = {attr: wire for renames in _RENAMES.values() for attr, wire in renames.items()}
_WIRE_PATH = re.compile(r"\.(" + "|".join(map(re.escape, _WIRE_NAMES)) + r")\b")


def _timestamp_json(value: dt.datetime) -> str:
    # Records hold aware UTC datetimes; a naive one (made by hand) is taken to be UTC rather than sent ambiguous.
    return (value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


def _timestamp(value: Any, _tp: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 timestamp string, got {value!r:.40}")
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r:.40} has no UTC offset")
    return parsed.astimezone(dt.UTC)


def _lineage(value: Any, _tp: Any) -> Lineage:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a JSON object, got {value!r:.40}")
    parent = value.get("parent_version")
    if parent is not None and (isinstance(parent, bool) or not isinstance(parent, int)):
        raise TypeError(f"parent_version: expected an integer, got {parent!r:.40}")
    return Lineage.from_mapping(value)


def _artifact_structure(conv: cattrs.Converter) -> Callable[[Any, Any], ArtifactRef]:
    fields = make_dict_structure_fn(ArtifactRef, conv)

    def structure(value: Any, tp: Any) -> ArtifactRef:
        uri = None
        if isinstance(value, Mapping) and "uri" in value:
            value = dict(value)
            uri = value.pop("uri")
        artifact = fields(value, tp)
        if uri is not None and uri != artifact.uri:
            raise ValueError(f"uri {uri!r:.80} does not name the digest {artifact.digest!r:.80}")
        return artifact

    return structure


def _record_hooks(conv: cattrs.Converter) -> None:
    """The unstructure and structure hooks of every attrs record, with :data:`_RENAMES` and :data:`_KEY_ORDER`."""

    def unstructure(cls: type) -> Callable[[Any], dict[str, Any]]:
        names: dict[str, Any] = {a: override(rename=w) for a, w in _RENAMES.get(cls, {}).items()}
        fields: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(cls, conv, **names)
        order = _KEY_ORDER.get(get_origin(cls) or cls)
        if order is None:
            return fields
        return lambda record: (lambda data: {key: data[key] for key in order})(fields(record))

    def structure(cls: type) -> Callable[[Any, Any], Any]:
        names: dict[str, Any] = {a: override(rename=w) for a, w in _RENAMES.get(get_origin(cls) or cls, {}).items()}
        return make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=conv.forbid_extra_keys, **names)

    def is_record(cls: Any) -> bool:
        return attrs.has(get_origin(cls) or cls) and (get_origin(cls) or cls).__module__ == "modelyard.types"

    conv.register_unstructure_hook_factory(is_record, unstructure)
    conv.register_structure_hook_factory(is_record, structure)


def _make(*, forbid_extra_keys: bool) -> cattrs.Converter:
    conv = make_converter()  # the config's strict converter: no coercion, containers checked
    conv.forbid_extra_keys = forbid_extra_keys
    _record_hooks(conv)
    conv.register_unstructure_hook(dt.datetime, _timestamp_json)
    conv.register_structure_hook(dt.datetime, _timestamp)
    conv.register_unstructure_hook(Lineage, Lineage.to_dict)
    conv.register_structure_hook(Lineage, _lineage)
    conv.register_unstructure_hook(ArtifactRef, lambda a: {"digest": a.digest, "size": a.size, "uri": a.uri})
    conv.register_structure_hook(ArtifactRef, _artifact_structure(conv))
    return conv


#: What :func:`to_json` and ``from_json(..., extra="forbid")`` use; exact round trips, unknown keys refused.
converter = _make(forbid_extra_keys=True)
#: The same converter, but keys it does not know are ignored: for reading answers from a newer server.
_tolerant = _make(forbid_extra_keys=False)


def to_json(record: Any) -> dict[str, Any]:
    """``record`` (an attrs record of :mod:`modelyard.types`) as JSON data; :func:`from_json` reverses it."""
    if not attrs.has(type(record)):
        raise TypeError(f"to_json takes a record, got {type(record).__name__}")
    data: dict[str, Any] = converter.unstructure(record)
    return data


def _what(cls: Any) -> str:
    """``ModelVersion`` → ``model_version``: how errors name the record."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", (get_origin(cls) or cls).__name__).lower()


def from_json(cls: type[T], data: Any, *, extra: Literal["forbid", "ignore"] = "forbid",
              what: str | None = None) -> T:
    """The ``cls`` record (``Model``, ``Page[ModelVersion]``, …) that :func:`to_json` made ``data`` from.

    Raises :class:`~modelyard.errors.InvalidInput` naming every problem — a missing field, a number where text
    belongs, a timestamp without an offset, an unknown key unless ``extra="ignore"`` — with ``field`` the first
    culprit's path, e.g. ``model_version.artifact.size`` (``what`` replaces the record's name in it).
    """
    what = what or _what(cls)
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{what}: expected a JSON object, got a {type(data).__name__}", field=what)
    try:
        return (converter if extra == "forbid" else _tolerant).structure(dict(data), cls)
    except InvalidInput:
        raise
    except Exception as exc:  # cattrs raises exception groups; name every problem
        if isinstance(exc, cattrs.BaseValidationError):
            problems = [_WIRE_PATH.sub(lambda m: "." + _WIRE_NAMES[m[1]], problem)
                        for problem in cattrs.transform_error(exc, path=what)]
        else:
            problems = [f"{type(exc).__name__}: {exc}"]
        field = problems[0].rsplit(" @ ", 1)[1] if " @ " in problems[0] else what
        raise InvalidInput(f"not a {what.replace('_', ' ')} record: " + "; ".join(problems), field=field) from exc


__all__ = ["converter", "from_json", "to_json"]
