"""JSON forms of the domain records — one mapping shared by the server, the client and the CLI's ``--json``.

Serialisation lives outside the domain classes (STYLE 13): the server answers with these dicts and the CLI prints
the same dicts whether it acts on an embedded platform or on a server, so both modes show the same output.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from modelyard.hookspecs.scheduler import Job
from modelyard.types import AuditEvent, Deployment, Model, ModelVersion, Page


def _ts(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def model_json(m: Model) -> dict[str, Any]:
    """A model: name, description, tags, latest version, aliases (alias → version number), timestamps."""
    return {"name": m.name, "description": m.description, "tags": dict(m.tags), "latest_version": m.latest_version,
            "aliases": dict(m.aliases), "created_at": _ts(m.created_at), "updated_at": _ts(m.updated_at)}


def version_json(v: ModelVersion) -> dict[str, Any]:
    """A version with its bundle facts: flavor, artifact digest and size, signature, requirements, lineage."""
    return {"model": v.model, "version": v.number, "flavor": v.flavor,
            "artifact": {"digest": v.artifact.digest, "size": v.artifact.size, "uri": v.artifact.uri},
            "signature": v.signature.to_dict() if v.signature else None, "requirements": list(v.requirements),
            "tags": dict(v.tags), "lineage": v.lineage.to_dict(), "aliases": list(v.aliases),
            "metadata": dict(v.metadata), "description": v.description, "created_at": _ts(v.created_at)}


def deployment_json(d: Deployment) -> dict[str, Any]:
    """A deployment record."""
    return {"name": d.name, "model": d.model, "version": d.version, "runtime": d.runtime,
            "requested_ref": d.requested_ref,
            "batching": ({"max_batch_size": d.batching.max_batch_size, "max_wait_ms": d.batching.max_wait_ms,
                          "wait_when_idle": d.batching.wait_when_idle}
                         if d.batching else None),
            "replicas": d.replicas, "options": dict(d.options), "state": d.state, "message": d.message,
            "created_at": _ts(d.created_at), "updated_at": _ts(d.updated_at)}


def audit_json(e: AuditEvent) -> dict[str, Any]:
    """An audit event."""
    return {"at": _ts(e.at), "principal": e.principal, "action": e.action, "resource": e.resource,
            "outcome": e.outcome, "source": e.source, "details": dict(e.details)}


def job_json(j: Job) -> dict[str, Any]:
    """A job record."""
    return {"id": j.id, "kind": j.kind, "state": j.state, "params": dict(j.params),
            "result": dict(j.result) if j.result is not None else None, "error": j.error, "attempts": j.attempts,
            "created_at": _ts(j.created_at), "updated_at": _ts(j.updated_at)}


def page_json(page: Page[Any], item: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """A page: ``{"items": [...], "total", "offset", "next_offset"}``."""
    return {"items": [item(i) for i in page.items], "total": page.total, "offset": page.offset,
            "next_offset": page.next_offset}


def plugins_json(pm: Any) -> dict[str, Any]:
    """The plugins of a plugin manager and the providers they offer (``modelyard plugins``, ``GET /api/v1/plugins``).

    ``{"plugins": [{name, distribution, version, module, hooks, builtin}], "slots": {slot: [{name, plugin,
    distribution, description, requires, missing, install_hint}]}, "broken": {name: reason}, "disabled": [...]}``;
    ``install_hint`` is set only when a provider's requirements are missing.
    """
    from modelyard.plugins import collect_providers

    slots: dict[str, list[dict[str, Any]]] = {}
    for slot, entries in collect_providers(pm).items():
        rows = []
        for name, entry in entries.items():
            missing = entry.provider.missing_requirements()
            rows.append({"name": name, "plugin": entry.plugin, "distribution": entry.distribution,
                         "description": entry.provider.description, "requires": list(entry.provider.requires),
                         "missing": missing, "install_hint": entry.provider.install_hint() if missing else None})
        slots[slot] = rows
    plugins = [{"name": i.name, "distribution": i.distribution, "version": i.version, "module": i.module,
                "hooks": list(i.hooks), "builtin": i.builtin} for i in pm.plugin_infos()]
    return {"plugins": plugins, "slots": slots, "broken": dict(getattr(pm, "broken", {})),
            "disabled": sorted(getattr(pm, "disabled", ()))}
