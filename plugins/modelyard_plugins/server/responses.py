"""The typed response bodies of ``/api/v1``: what the OpenAPI document describes for each answer.

Each schema is exactly the JSON :func:`modelyard.converter.to_json` makes of a record (names, types, key order)
— ``tests/plugins/server/test_server_responses.py`` holds them to that — so the server's answers, the client that
reads them and the CLI's ``--json`` keep one form. Handlers answer with :func:`wire`::

    def get_version(...) -> VersionOut:
        return wire(VersionOut, platform.registry.get_version(ref))

Domain records stay free of transport concerns (STYLE 14): these are msgspec structs at the edge, the records'
JSON typed for the document. Timestamps are ISO 8601 strings (the converter's, with their ``+00:00``).
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec
from litestar.openapi.spec import OpenAPIFormat
from litestar.params import KwargDefinition
from modelyard.converter import to_json

S = TypeVar("S", bound=msgspec.Struct)
T = TypeVar("T")

#: The converter's timestamps: text, so that the answer keeps its ``+00:00`` (a datetime would be sent with ``Z``).
Timestamp = Annotated[str, KwargDefinition(description="ISO 8601 timestamp in UTC", format=OpenAPIFormat.DATE_TIME)]
State = Literal["pending", "ready", "failed", "stopped"]


class _Out(msgspec.Struct, forbid_unknown_fields=True):
    """A response body: every member the converter writes, and no other (a drift is an error, not a guess)."""


class TensorSpecOut(_Out):
    """One named input or output: a V2 datatype and a shape (``-1`` for a dynamic dimension)."""

    name: str
    datatype: str
    shape: list[int]


class SignatureOut(_Out):
    """A version's inputs and outputs."""

    inputs: list[TensorSpecOut]
    outputs: list[TensorSpecOut]


class ArtifactOut(_Out):
    """The stored bundle: its sha256 digest, size in bytes and ``sha256:<digest>`` URI."""

    digest: str
    size: int
    uri: str


class VersionOut(_Out):
    """One version of a model (``version`` is its number)."""

    model: str
    version: int
    flavor: str
    artifact: ArtifactOut
    signature: SignatureOut | None
    requirements: list[str]
    tags: dict[str, str]
    lineage: dict[str, Any]
    aliases: list[str]
    metadata: dict[str, Any]
    description: str
    created_at: Timestamp


class ModelOut(_Out):
    """A model: its tags, newest version number and aliases (alias → version number)."""

    name: str
    description: str
    tags: dict[str, str]
    latest_version: int
    aliases: dict[str, int]
    created_at: Timestamp
    updated_at: Timestamp


class BatchingOut(_Out):
    """A deployment's dynamic batching."""

    max_batch_size: int
    max_wait_ms: float
    wait_when_idle: bool


class DeploymentOut(_Out):
    """A deployment record: the desired state, with the generation serving processes converge to."""

    name: str
    model: str
    version: int
    runtime: str
    requested_ref: str
    batching: BatchingOut | None
    replicas: int
    options: dict[str, Any]
    state: State
    message: str
    generation: int
    created_at: Timestamp
    updated_at: Timestamp


class ServingOut(_Out):
    """What one serving process reports for a deployment, and whether it converged to the record."""

    process: str
    deployment: str
    host: str
    pid: int
    model: str
    version: int
    generation: int
    state: State
    message: str
    seen_at: Timestamp
    converged: bool


class DeploymentAnswer(DeploymentOut):
    """A deployment record with the process that answered and where each serving process stands."""

    served_by: str
    processes: list[ServingOut]


class DeploymentStatusOut(DeploymentAnswer):
    """A deployment with what this process's runtime reports now."""

    ready: bool
    runtime_status: dict[str, Any]


class DeploymentList(_Out):
    """Every deployment record."""

    items: list[DeploymentOut]


class AuditOut(_Out):
    """An audited action: who, what, on what, when, from where, and how it ended."""

    at: Timestamp
    principal: str
    action: str
    resource: str
    outcome: Literal["ok", "denied", "error"]
    source: str
    details: dict[str, Any]


class PageOut(_Out, Generic[T]):
    """A page of a listing (``PageOut[VersionOut]``, …); ``next_offset`` is null on the last page."""

    items: list[T]
    total: int
    offset: int
    next_offset: int | None


def wire(schema: type[S], record: Any, **extra: Any) -> S:
    """``record``'s JSON (:func:`modelyard.converter.to_json`, plus ``extra`` members) as ``schema``."""
    return msgspec.convert({**to_json(record), **extra}, schema)


__all__ = ["ArtifactOut", "AuditOut", "BatchingOut", "DeploymentAnswer", "DeploymentList", "DeploymentOut",
           "DeploymentStatusOut", "ModelOut", "PageOut", "ServingOut", "SignatureOut", "TensorSpecOut", "VersionOut",
           "wire"]
