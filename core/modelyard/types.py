"""Domain records shared by every slot: models, versions, signatures, artifacts, deployments, audit events.

They are frozen attrs classes with no ORM or transport concerns (STYLE 13-14); the SQL registry maps them to rows
and the server maps them to JSON at the edges.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeVar

import attrs

from modelyard.errors import InvalidInput
from modelyard.names import check_alias, check_name, check_tag

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
_REF = re.compile(r"^(?P<name>[^:@]+)(?::(?P<version>[^:@]+)|@(?P<alias>[^:@]+))?$")


@attrs.frozen
class ModelRef:
    """A way to point at one version: ``name`` (newest), ``name:3`` or ``name@production``."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse ``NAME[:VERSION|@ALIAS]``; ``name:latest`` means the newest version."""
        m = _REF.match(text.strip()) if isinstance(text, str) else None
        if not m:
            raise InvalidInput(f"model reference {text!r}: expected NAME, NAME:VERSION or NAME@ALIAS", field="model")
        name = check_name(m["name"], field="model")
        if m["version"] is not None:
            if m["version"] == "latest":
                return cls(name)
            if not m["version"].isdigit() or not 1 <= int(m["version"]) <= MAX_INT:
                raise InvalidInput(
                    f"model reference {text!r}: version must be a positive integer, got {m['version']!r}",
                    field="version",
                )
            return cls(name, version=int(m["version"]))
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
DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BYTES")  # fmt: skip


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
        return cls(data["name"], data["datatype"], tuple([int(d) for d in data["shape"]]))


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
        """Build from a loose mapping (CLI ``--lineage k=v``, JSON); unknown keys land in ``extra``."""
        data = dict(data or {})
        datasets = data.pop("datasets", ()) or ()
        if isinstance(datasets, str):
            datasets = [datasets]
        if "dataset" in data:
            ds = data.pop("dataset")
            datasets = [*datasets, *([ds] if isinstance(ds, str) else ds)]
        parent = data.pop("parent_version", None)
        if parent is not None:
            try:
                parent = int(parent)
            except (TypeError, ValueError):
                raise InvalidInput(f"lineage parent_version: expected an integer, got {parent!r}",
                                   field="lineage.parent_version") from None
        extra = {str(k): str(v) for k, v in data.items() if k not in ("source_run", "code_ref")}
        return cls(source_run=data.get("source_run"), datasets=tuple([str(d) for d in datasets]),
                   code_ref=data.get("code_ref"), parent_version=parent, extra=extra)

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


@attrs.frozen(kw_only=True)
class BatchingConfig:
    """Dynamic batching for one deployment: merge concurrent requests into calls of up to ``max_batch_size`` rows."""

    max_batch_size: int = attrs.field(default=32, validator=attrs.validators.ge(1))
    max_wait_ms: float = attrs.field(default=2.0, validator=attrs.validators.ge(0))
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
    created_at: dt.datetime = attrs.field(factory=utcnow)
    updated_at: dt.datetime = attrs.field(factory=utcnow)


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


# --------------------------------------------------------------------------------------------- events
@attrs.frozen(kw_only=True)
class PredictionEvent:
    """One prediction served; given to monitors and billing on the hot path — record and return."""

    deployment: str
    model: str
    version: int
    rows: int
    latency_s: float
    ok: bool
    principal: str = "anonymous"
    error: str | None = None
    at: float = 0.0  # time.time(); a float because building datetimes per request costs


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
    """A version number: a positive integer (at most a signed 64-bit integer)."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value))
        except ValueError:
            value = 0
    if not 1 <= value <= MAX_INT:
        raise InvalidInput(f"{field}: expected a positive integer up to {MAX_INT}", field=field)
    return value


__all__ = [
    "ANONYMOUS", "DATATYPES", "ArtifactRef", "AuditEvent", "BatchingConfig", "Deployment", "Lineage", "Model",
    "ModelRef", "ModelVersion", "NewVersion", "Page", "PredictionEvent", "Principal", "Signature", "TensorSpec",
    "check_alias", "check_name", "check_tags", "check_version_number", "utcnow",
]  # fmt: skip
