"""Domain records shared by every slot: models, versions, signatures, artifacts, deployments, audit events.

They are frozen attrs classes with no ORM or transport concerns (STYLE 13-14); the SQL registry maps them to rows
and the server maps them to JSON at the edges.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import attrs

from modelyard.datatypes import DATATYPES
from modelyard.errors import InvalidInput
from modelyard.names import check_alias, check_name, check_tag, is_unicode

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

T = TypeVar("T")


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


def _tags(value: Mapping[str, str] | None) -> Mapping[str, str]:
    tags = dict(value or {})
    for k, v in tags.items():
        check_tag(k, v)
    return MappingProxyType(tags)


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value)


def utcnow() -> dt.datetime:
    """Timezone-aware now, the only clock records use."""
    return dt.datetime.now(dt.UTC)


# --------------------------------------------------------------------------------------------- references
_REF = re.compile(r"(?P<name>[^:@]+)(?::(?P<version>[^:@]+)|@(?P<alias>[^:@]+))?")


@attrs.frozen
class ModelRef:
    """A way to point at one version: ``name`` (newest), ``name:3`` or ``name@production``."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse ``NAME[:VERSION|@ALIAS]``; ``name:latest`` means the newest version."""
        m = _REF.fullmatch(text.strip()) if isinstance(text, str) else None
        if not m:
            raise InvalidInput(f"model reference {text!r}: expected NAME, NAME:VERSION or NAME@ALIAS", field="model")
        name = check_name(m["name"], field="model")
        if m["version"] is not None:
            if m["version"] == "latest":
                return cls(name)
            number = _decimal(m["version"])
            if not 1 <= number <= MAX_INT:
                raise InvalidInput(
                    f"model reference {text!r}: version must be a positive integer in ASCII digits, got "
                    f"{m['version']!r}",
                    field="version",
                )
            return cls(name, version=number)
        if m["alias"] is not None:
            return cls(name, alias=check_alias(m["alias"]))
        return cls(name)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


# --------------------------------------------------------------------------------------------- tensors
# DATATYPES (re-exported here) is modelyard.datatypes' table: one definition for the records, codec and builders.


@attrs.frozen
class TensorSpec:
    """One named input or output: an Open Inference Protocol datatype and a shape, ``-1`` for dynamic dims."""

    name: str
    datatype: str = attrs.field(validator=attrs.validators.in_(DATATYPES))
    shape: tuple[int, ...] = attrs.field(converter=_tuple)

    def to_dict(self) -> dict[str, Any]:
        """The V2 metadata form: ``{"name", "datatype", "shape"}``."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        """Inverse of :meth:`to_dict`."""
        shape = data["shape"]
        if isinstance(shape, str | bytes) or not all(type(d) is int and -1 <= d < 2**31 for d in shape):
            raise ValueError(f"shape {shape!r:.80}: expected a list of integers (-1 for a dynamic dimension)")
        if len(shape) > 64:
            raise ValueError(f"shape has {len(shape)} dimensions; at most 64 are allowed")
        return cls(data["name"], data["datatype"], tuple(shape))


@attrs.frozen
class Signature:
    """A model's inputs and outputs."""

    inputs: tuple[TensorSpec, ...] = attrs.field(converter=_tuple)
    outputs: tuple[TensorSpec, ...] = attrs.field(converter=_tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in the registry."""
        return {"inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """Inverse of :meth:`to_dict`."""
        return cls(
            tuple([TensorSpec.from_dict(t) for t in data.get("inputs", ())]),
            tuple([TensorSpec.from_dict(t) for t in data.get("outputs", ())]),
        )


# --------------------------------------------------------------------------------------------- registry
@attrs.frozen(kw_only=True)
class ArtifactRef:
    """A stored blob, addressed by its sha256 hex digest."""

    digest: str
    size: int

    @property
    def uri(self) -> str:
        """``sha256:<hex>``, the form shown to users."""
        return f"sha256:{self.digest}"


@attrs.frozen(kw_only=True)
class Lineage:
    """Where a version came from: the run that trained it, its data, its code and its parent version."""

    source_run: str | None = None
    datasets: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    code_ref: str | None = None
    parent_version: int | None = None
    extra: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_mapping)

    KNOWN = ("source_run", "datasets", "dataset", "code_ref", "parent_version")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> Lineage:
        """Build from a loose mapping (CLI ``--lineage k=v``, JSON); unknown keys land in ``extra``.

        Every value is a string (no lone surrogates), except ``datasets``/``dataset`` (a string or a list of
        strings) and ``parent_version`` (a positive integer, or its ASCII digits); anything else raises
        :class:`InvalidInput` naming ``lineage.<key>``.
        """
        data = dict(data or {})
        for key, value in data.items():
            if not isinstance(key, str) or not is_unicode(key):
                raise InvalidInput(f"lineage key {key!r}: expected a string", field="lineage")
            if key in ("datasets", "dataset", "parent_version") or value is None:
                continue
            if not isinstance(value, str) or not is_unicode(value):
                raise InvalidInput(f"lineage {key}: expected a string, got {_json_kind(value)}",
                                   field=f"lineage.{key}")
        datasets = [*_strings(data.pop("datasets", None), "datasets"), *_strings(data.pop("dataset", None), "dataset")]
        parent = data.pop("parent_version", None)
        if parent is not None:
            parent = check_version_number(parent, field="lineage.parent_version")
        extra = {k: v for k, v in data.items() if k not in ("source_run", "code_ref") and v is not None}
        return cls(source_run=data.get("source_run"), datasets=tuple(datasets), code_ref=data.get("code_ref"),
                   parent_version=parent, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; empty fields left out."""
        out: dict[str, Any] = {}
        if self.source_run:
            out["source_run"] = self.source_run
        if self.datasets:
            out["datasets"] = list(self.datasets)
        if self.code_ref:
            out["code_ref"] = self.code_ref
        if self.parent_version is not None:
            out["parent_version"] = self.parent_version
        out.update(self.extra)
        return out


@attrs.frozen(kw_only=True)
class Model:
    """A named model: a sequence of immutable versions plus movable aliases."""

    name: str = attrs.field(validator=lambda _i, _a, v: check_name(v))
    description: str = ""
    tags: Mapping[str, str] = attrs.field(factory=dict, converter=_tags)
    latest_version: int = 0
    aliases: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_mapping)
    created_at: dt.datetime = attrs.field(factory=utcnow)
    updated_at: dt.datetime = attrs.field(factory=utcnow)


@attrs.frozen(kw_only=True)
class ModelVersion:
    """One immutable version of a model: its bundle's artifact, signature and provenance."""

    model: str
    number: int
    flavor: str
    artifact: ArtifactRef
    signature: Signature | None = None
    requirements: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    tags: Mapping[str, str] = attrs.field(factory=dict, converter=_tags)
    lineage: Lineage = attrs.field(factory=Lineage)
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)
    aliases: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    description: str = ""
    created_at: dt.datetime = attrs.field(factory=utcnow)

    @property
    def ref(self) -> ModelRef:
        """The exact reference ``name:number``."""
        return ModelRef(self.model, version=self.number)


@attrs.frozen(kw_only=True)
class NewVersion:
    """What a registry backend needs to create a version; the number is assigned by the backend."""

    model: str
    flavor: str
    artifact: ArtifactRef
    signature: Signature | None = None
    requirements: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    tags: Mapping[str, str] = attrs.field(factory=dict, converter=_tags)
    lineage: Lineage = attrs.field(factory=Lineage)
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)
    description: str = ""
    #: Aliases to point at the new version in the same transaction (a registration with ``alias=``).
    aliases: tuple[str, ...] = attrs.field(default=(), converter=lambda v: tuple(check_alias(a) for a in v))


@attrs.frozen
class Page(Generic[T]):
    """One page of a listing. ``next_offset`` is None on the last page."""

    items: tuple[T, ...] = attrs.field(converter=_tuple)
    total: int
    offset: int = 0
    next_offset: int | None = None


# --------------------------------------------------------------------------------------------- deployments
DeploymentState = Literal["pending", "ready", "failed", "stopped"]


#: Upper bounds of the batching fields: a batch larger than this or a wait longer than 10 s is a mistake (and a
#: hostile ``max_wait_ms: 1e300`` would hold every request forever).
MAX_BATCH_SIZE = 65536
MAX_WAIT_MS = 10_000.0
#: The most replicas a deployment may ask for (``replicas: 2**64`` must be a clear error, not an overflow).
MAX_REPLICAS = 1024


def _bounded_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: expected an integer from {low} to {high}, got {value!r:.40}")


def _bounded_float(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:  # NaN fails too
        raise ValueError(f"{name}: expected a number from {low:g} to {high:g}, got {value!r:.40}")


@attrs.frozen(kw_only=True)
class BatchingConfig:
    """Dynamic batching for one deployment: merge concurrent requests into calls of up to ``max_batch_size`` rows."""

    max_batch_size: int = attrs.field(default=32, validator=lambda _i, a, v: _bounded_int(a.name, v, 1, MAX_BATCH_SIZE))
    max_wait_ms: float = attrs.field(default=2.0, validator=lambda _i, a, v: _bounded_float(a.name, v, 0, MAX_WAIT_MS))
    #: Hold a batch for max_wait_ms even when the model is idle (default: an idle model takes requests at once).
    wait_when_idle: bool = False


@attrs.frozen(kw_only=True)
class Deployment:
    """A model version brought up on a runtime under a name (the V2 model name)."""

    name: str = attrs.field(validator=lambda _i, _a, v: check_name(v, field="deployment"))
    model: str
    version: int
    runtime: str
    requested_ref: str = ""
    batching: BatchingConfig | None = None
    replicas: int = 1
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)
    state: DeploymentState = "pending"
    message: str = ""
    #: Bumped by the registry each time the desired state (version, batching, replicas, options) is written;
    #: serving processes report the generation they converged to.
    generation: int = 0
    created_at: dt.datetime = attrs.field(factory=utcnow)
    updated_at: dt.datetime = attrs.field(factory=utcnow)


@attrs.frozen(kw_only=True)
class ServingState:
    """What one serving process reports for one deployment: the version it serves and whether it converged.

    ``state`` is ``ready`` (serving ``version`` of ``generation``), ``failed`` (the last attempt to converge
    failed: ``message`` says why), or ``stopped``. ``seen_at`` is the process's last heartbeat.
    """

    process: str
    deployment: str
    host: str = ""
    pid: int = 0
    model: str = ""
    version: int = 0
    generation: int = 0
    state: DeploymentState = "ready"
    message: str = ""
    seen_at: dt.datetime = attrs.field(factory=utcnow)


# --------------------------------------------------------------------------------------------- audit
@attrs.frozen(kw_only=True)
class AuditEvent:
    """A mutating action: who, what, on what, when, from where, and how it ended."""

    action: str
    resource: str
    principal: str = "anonymous"
    outcome: Literal["ok", "denied", "error"] = "ok"
    source: str = "api"
    details: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)
    at: dt.datetime = attrs.field(factory=utcnow)


@attrs.frozen(kw_only=True)
class Principal:
    """Who is calling: a user, a service key or anonymous (dev mode)."""

    id: str
    roles: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    team: str | None = None
    attributes: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)


ANONYMOUS = Principal(id="anonymous", roles=("admin",))
#: Who acts when a Platform verb is called in process (Python, the embedded CLI, a job) without a principal: the
#: platform's default ``local_principal``.
LOCAL = Principal(id="local", roles=("admin",))


# --------------------------------------------------------------------------------------------- events
@attrs.frozen(kw_only=True)
class PredictionEvent:
    """One prediction served (or failed); given to monitors and billing on the hot path — record and return.

    ``model`` and ``version`` are those that answered (from the runtime's :class:`Prediction`); a request that
    failed has ``ok=False``, ``error_type`` (the exception's class name) and ``error`` (its message), and
    ``model=""``/``version=0`` since no version answered. ``latency_s`` is measured around the whole runtime call.

    ``inputs`` and ``outputs`` are *references*, not copies: the very mappings the caller passed and the runtime
    returned (``outputs`` is None on failure), for observers that look at the data (drift, request logs). They
    are shared with the caller and, under batching, the arrays may be views into one batch's buffers: observers
    must not mutate them. They are valid during the observer call only — the platform sets both to None once
    every observer has returned, so that an observer keeping events in a buffer does not keep every request's
    arrays alive; copy (or reduce to statistics) what you need beyond the call.
    """

    deployment: str
    model: str
    version: int
    rows: int
    latency_s: float
    ok: bool
    principal: str = "anonymous"
    error: str | None = None
    error_type: str | None = None
    at: float = 0.0  # time.time(); a float because building datetimes per request costs
    # Not compared and not shown: arrays have no truth value, and a repr would print whole tensors.
    inputs: Mapping[str, Any] | None = attrs.field(default=None, eq=False, repr=False)
    outputs: Mapping[str, Any] | None = attrs.field(default=None, eq=False, repr=False)


def check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """Validate a tag mapping and return it as a plain dict."""
    out = {}
    for k, v in (tags or {}).items():
        check_tag(k, v)
        out[k] = v
    return out


#: The largest version number, offset or count accepted: a signed 64-bit integer, what every database stores.
MAX_INT = 2**63 - 1


def check_version_number(value: object, *, field: str = "version") -> int:
    """A version number: a positive integer (at most a signed 64-bit integer), or its ASCII decimal digits as a
    string (``"3"``, from a URL or the CLI) — no sign, space, underscore or other Unicode digit (``int()`` takes
    them all)."""
    if isinstance(value, str):
        number = _decimal(value)
    elif isinstance(value, bool):
        number = 0
    else:
        try:
            number = operator.index(value)  # type: ignore[arg-type]  # ints and numpy ints; not floats
        except TypeError:
            number = 0
    if not 1 <= number <= MAX_INT:
        raise InvalidInput(f"{field}: expected a positive integer up to {MAX_INT} in ASCII digits, got "
                           f"{value!r:.40}", field=field)
    return number


def _decimal(text: str) -> int:
    """``text`` as a non-negative integer when it is 1-19 ASCII digits, else -1."""
    return int(text) if _DECIMAL.fullmatch(text) else -1


_DECIMAL = re.compile(r"[0-9]{1,19}")


def _json_kind(value: object) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}.get(
        type(value), "a string with a lone surrogate" if isinstance(value, str) else type(value).__name__)


def _strings(value: object, key: str) -> list[str]:
    """``datasets``/``dataset`` of a lineage: None, a string or a list of strings."""
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(v, str) and is_unicode(v) for v in items):
        raise InvalidInput(f"lineage {key}: expected a string or a list of strings, got {_json_kind(value)}",
                           field=f"lineage.{key}")
    return list(items)


# --------------------------------------------------------------------------------------------- builds and bundles
# Records the builder and runtime contracts exchange (hookspecs hold contracts only).
@attrs.frozen(kw_only=True)
class BuildOptions:
    """What the caller tells a builder beyond the upload itself.

    ``sample_input`` runs through the loaded model during validation (a generated input matching the signature
    is used when absent); when ``expected_output`` is given the outputs must match within ``rtol``/``atol``.
    ``options`` holds flavor-specific settings, e.g. ``module_factory = "pkg.mod:make"`` for torch safetensors or
    ``input_names`` for torch programs.
    """

    sample_input: Mapping[str, np.ndarray] | None = None
    expected_output: Mapping[str, np.ndarray] | None = None
    rtol: float = 1e-4
    atol: float = 1e-5
    options: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Validation:
    """The outcome of a bundle's validation run."""

    ok: bool
    message: str = ""
    input_source: str = "generated"  # "sample" or "generated"
    compared_outputs: tuple[str, ...] = ()
    max_abs_error: float | None = None


@attrs.frozen(kw_only=True)
class BuiltBundle:
    """A builder's result: the normalised artifact file and everything needed to serve it.

    ``artifact`` is one file (directories such as SavedModels are zipped) inside the ``workdir`` the builder was
    given; the platform stores it content-addressed. ``metadata`` is JSON-ready (it is stored with the version);
    a builder that unpickled anything sets ``metadata["pickle_loaded"] = True`` so the platform audits it.
    """

    artifact: Path
    signature: Signature
    requirements: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    validation: Validation = attrs.field(factory=lambda: Validation(ok=True))


@attrs.frozen(kw_only=True)
class BundleSource:
    """Everything a runtime needs to load one version, wherever it runs — plain data, no callables.

    ``locator`` is where the artifact lives in the platform's storage slot (``sha256:<digest>``: storage is
    content-addressed); ``digest`` is what the fetched bytes are checked against. A worker process (a Ray
    replica, a job runner) that has the same config rebuilds the model from this record alone through its own
    :class:`Loader` (:class:`modelyard.loading.BundleLoader`); the record goes to and from JSON through
    :mod:`modelyard.converter` (``to_json(source)``, ``from_json(BundleSource, data)``).
    """

    model: str
    version: int
    flavor: str
    digest: str
    size: int
    signature: Signature
    locator: str


__all__ = [
    "ANONYMOUS",
    "DATATYPES",
    "LOCAL",
    "ArtifactRef",
    "AuditEvent",
    "BatchingConfig",
    "BuildOptions",
    "BuiltBundle",
    "BundleSource",
    "Deployment",
    "Lineage",
    "Model",
    "ModelRef",
    "ModelVersion",
    "NewVersion",
    "Page",
    "PredictionEvent",
    "Principal",
    "ServingState",
    "Signature",
    "TensorSpec",
    "Validation",
    "check_alias",
    "check_name",
    "check_tags",
    "check_version_number",
    "utcnow",
]  # fmt: skip


# --------------------------------------------------------------------------------------------- jobs
#: How deep JSON params and results may nest: bounded work for whatever a request sends.
MAX_JSON_DEPTH = 32


def check_json(value: object, *, field: str, _depth: int = 0) -> Any:
    """``value`` as plain JSON data (dicts with string keys, lists, strings, finite numbers, booleans, None).

    Tuples become lists and number subclasses plain numbers, so the result survives ``json.dumps``/``json.loads``
    unchanged. Anything else raises :class:`~modelyard.errors.InvalidInput` naming the offending path, e.g.
    ``params.paths[2]``.
    """
    if _depth > MAX_JSON_DEPTH:
        raise InvalidInput(f"{field}: nested deeper than {MAX_JSON_DEPTH} levels", field=field)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if value != value or abs(value) == float("inf"):  # NaN is the one value unequal to itself
            raise InvalidInput(f"{field}: {value!r} has no JSON form (NaN and infinities are not JSON)", field=field)
        return float(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{field}: key {key!r:.40} is not a string (JSON object keys are strings)",
                                   field=field)
            out[key] = check_json(item, field=f"{field}.{key}", _depth=_depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [check_json(item, field=f"{field}[{i}]", _depth=_depth + 1) for i, item in enumerate(value)]
    raise InvalidInput(f"{field}: a {type(value).__name__} is not JSON-serialisable; expected an object, a list, "
                       "a string, a number, a boolean or null", field=field)


def _json_object(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field}: expected a JSON object, got a {type(value).__name__}", field=field)
    return MappingProxyType(check_json(value, field=field))


def _job_params(value: object) -> Mapping[str, Any]:
    return _json_object(value, "params")


def _job_result(value: object) -> Mapping[str, Any] | None:
    return None if value is None else _json_object(value, "result")


JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
#: The states a job ends in and never leaves.
FINAL_JOB_STATES = frozenset({"succeeded", "failed", "cancelled"})


@attrs.frozen(kw_only=True)
class Job:
    """One unit of background work: a job kind, its JSON params, and where the work stands.

    A job is plain data so that it can be stored, resumed after a crash and shipped to another process, where
    the kind is looked up by name again (DESIGN "plain data across processes"): ``kind`` names a
    :class:`~modelyard.jobs.JobKind` offered through ``modelyard_job_kinds``; ``params`` and ``result`` are JSON
    objects (checked when the record is made). ``attempts`` counts the runs started, ``retries`` how many further
    attempts a failure may take; ``error`` is the last failure (``"ValueError: bad data"``). ``started_at`` is
    when the first attempt started and ``finished_at`` when the job reached a final state. ``modelyard.jobs``
    converts it to and from JSON.
    """

    id: str
    kind: str
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=_job_params)
    state: JobState = "queued"
    attempts: int = 0
    retries: int = 0
    error: str | None = None
    result: Mapping[str, Any] | None = attrs.field(default=None, converter=_job_result)
    created_at: dt.datetime = attrs.field(factory=utcnow)
    updated_at: dt.datetime = attrs.field(factory=utcnow)
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None

    @property
    def done(self) -> bool:
        """Whether the job reached a final state (succeeded, failed or cancelled)."""
        return self.state in FINAL_JOB_STATES


__all__ += ["FINAL_JOB_STATES", "MAX_JSON_DEPTH", "Job", "JobState", "check_json"]


# --------------------------------------------------------------------------------------------- predictions
@attrs.frozen(kw_only=True, eq=False)
class Prediction:
    """What one ``Runtime.predict`` call did: the outputs, and which version computed them, how.

    ``outputs`` maps output names to numpy arrays (batch on axis 0; under batching, views into the batch's
    arrays). ``model`` and ``version`` are those that answered — a runtime that splits traffic or runs
    elsewhere says which one it was. ``rows`` is the request's batch size. ``model_s`` is the model call that
    answered it (shared by every request of a batch); ``queue_s`` the rest of the time the runtime held the
    request (waiting for a slot or a batch, thread hops). Compared by identity: arrays have no equality.
    """

    outputs: Mapping[str, Any]
    model: str
    version: int
    rows: int
    queue_s: float = 0.0
    model_s: float = 0.0


__all__ += ["Prediction"]
