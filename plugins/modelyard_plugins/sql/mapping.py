"""Rows to domain records and back — the edge between :mod:`.tables` and :mod:`modelyard.types` (STYLE 14).

Rows arrive as SQLAlchemy ``Row`` objects from Core queries; JSON columns hold plain dicts and lists.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import sqlalchemy as sa
from modelyard.errors import InvalidInput
from modelyard.types import (
    ArtifactRef,
    AuditEvent,
    BatchingConfig,
    Deployment,
    Lineage,
    Model,
    ModelVersion,
    NewVersion,
    ServingState,
    Signature,
)

from modelyard_plugins.sql.engine import json_dumps
from modelyard_plugins.sql.tables import versions


def jsonable(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``value`` as JSON will give it back (numpy numbers become numbers, tuples lists); InvalidInput naming
    ``what`` when JSON cannot hold it (objects, NaN).

    Done here rather than left to the driver because drivers fail differently: SQLite's is wrapped by
    SQLAlchemy, psycopg's raises a bare ``TypeError`` from inside ``execute``.
    """
    try:
        return json.loads(json_dumps(dict(value)))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} cannot be stored as JSON: {exc}", field=what.split()[0]) from None


# --------------------------------------------------------------------------------------------- lineage
def lineage_to_json(lineage: Lineage) -> dict[str, Any]:
    """Lineage as stored: every field under its own key, so ``extra`` never mixes with the known fields."""
    return {"source_run": lineage.source_run, "datasets": list(lineage.datasets), "code_ref": lineage.code_ref,
            "parent_version": lineage.parent_version, "extra": dict(lineage.extra)}


def lineage_from_json(data: Mapping[str, Any] | None) -> Lineage:
    """Inverse of :func:`lineage_to_json`."""
    data = data or {}
    return Lineage(source_run=data.get("source_run"), datasets=tuple(data.get("datasets") or ()),
                   code_ref=data.get("code_ref"), parent_version=data.get("parent_version"),
                   extra=data.get("extra") or {})


# --------------------------------------------------------------------------------------------- versions
def version_values(new: NewVersion, number: int, now: Any) -> dict[str, Any]:
    """The ``versions`` row for a new version."""
    return {
        "model": new.model, "number": number, "flavor": new.flavor, "digest": new.artifact.digest,
        "size": new.artifact.size, "signature": new.signature.to_dict() if new.signature is not None else None,
        "requirements": list(new.requirements), "metadata": jsonable(new.metadata, f"metadata of {new.model!r}"),
        "lineage": lineage_to_json(new.lineage), "description": new.description, "created_at": now,
    }


#: The columns of a version, in the order :func:`version_from_row` unpacks them; select versions with these.
VERSION_COLUMNS = tuple(versions.c[name] for name in (
    "model", "number", "flavor", "digest", "size", "signature", "requirements", "metadata", "lineage",
    "description", "created_at"))


def version_from_row(row: sa.Row[Any], tags: Mapping[str, str], aliases: Iterable[str]) -> ModelVersion:
    """A row of :data:`VERSION_COLUMNS`, its tags and the aliases pointing at it."""
    # Unpacked by position (the order of VERSION_COLUMNS): this runs for every row of every page, and tuple
    # unpacking costs a fraction of eleven by-name lookups.
    (model, number, flavor, digest, size, signature, requirements, metadata, lineage, description,
     created_at) = row
    return ModelVersion(
        model=model, number=number, flavor=flavor, artifact=ArtifactRef(digest=digest, size=size),
        signature=Signature.from_dict(signature) if signature is not None else None,
        requirements=requirements or (), tags=tags, lineage=lineage_from_json(lineage), metadata=metadata or {},
        aliases=sorted(aliases), description=description, created_at=created_at,
    )


# --------------------------------------------------------------------------------------------- models
def model_from_row(row: sa.Row[Any], tags: Mapping[str, str], aliases: Mapping[str, int]) -> Model:
    """A ``models`` row with its tags and aliases."""
    m = row._mapping
    return Model(name=m["name"], description=m["description"], tags=tags, latest_version=m["latest_version"],
                 aliases=dict(sorted(aliases.items())), created_at=m["created_at"], updated_at=m["updated_at"])


# --------------------------------------------------------------------------------------------- deployments
def deployment_values(d: Deployment) -> dict[str, Any]:
    """The ``deployments`` row for a record."""
    batching = None if d.batching is None else attrs.asdict(d.batching)
    return {"name": d.name, "model": d.model, "version": d.version, "runtime": d.runtime,
            "requested_ref": d.requested_ref, "batching": batching, "replicas": d.replicas,
            "options": jsonable(d.options, f"options of deployment {d.name!r}"), "state": d.state,
            "message": d.message, "generation": d.generation, "created_at": d.created_at, "updated_at": d.updated_at}


def deployment_from_row(row: sa.Row[Any]) -> Deployment:
    """Inverse of :func:`deployment_values`."""
    m = row._mapping
    batching = m["batching"]
    return Deployment(
        name=m["name"], model=m["model"], version=m["version"], runtime=m["runtime"],
        requested_ref=m["requested_ref"], batching=BatchingConfig(**batching) if batching is not None else None,
        replicas=m["replicas"], options=m["options"] or {}, state=m["state"], message=m["message"],
        generation=m["generation"], created_at=m["created_at"], updated_at=m["updated_at"],
    )


def serving_values(s: ServingState) -> dict[str, Any]:
    """The ``serving`` row for one process's report."""
    return {"process": s.process, "deployment": s.deployment, "host": s.host, "pid": s.pid, "model": s.model,
            "version": s.version, "generation": s.generation, "state": s.state, "message": s.message,
            "seen_at": s.seen_at}


def serving_from_row(row: sa.Row[Any]) -> ServingState:
    """Inverse of :func:`serving_values`."""
    return ServingState(**row._mapping)


# --------------------------------------------------------------------------------------------- audit
def audit_values(e: AuditEvent) -> dict[str, Any]:
    """The ``audit`` row for an event (the id is assigned by the database)."""
    return {"at": e.at, "principal": e.principal, "action": e.action, "resource": e.resource,
            "outcome": e.outcome, "source": e.source, "details": jsonable(e.details, "details of the audit event")}


def audit_from_row(row: sa.Row[Any]) -> AuditEvent:
    """Inverse of :func:`audit_values`."""
    m = row._mapping
    return AuditEvent(action=m["action"], resource=m["resource"], principal=m["principal"],
                      outcome=m["outcome"], source=m["source"], details=m["details"] or {}, at=m["at"])
