"""The JSON forms the server's handlers answer with, by record — each a one-liner over :mod:`modelyard.converter`.

Every record has exactly one JSON form, :func:`modelyard.converter.to_json`; the functions here stay for the
server's handlers until they return typed schemas, plus :func:`plugins_json`, which reports on a plugin manager
rather than converting a record. The client and the CLI use the converter directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelyard.converter import to_json
from modelyard.types import AuditEvent, Deployment, Job, Model, ModelVersion, Page, ServingState


def model_json(m: Model) -> dict[str, Any]:
    """A model: name, description, tags, latest version, aliases (alias → version number), timestamps."""
    return to_json(m)


def version_json(v: ModelVersion) -> dict[str, Any]:
    """A version with its bundle facts: flavor, artifact digest and size, signature, requirements, lineage."""
    return to_json(v)


def deployment_json(d: Deployment) -> dict[str, Any]:
    """A deployment record."""
    return to_json(d)


def serving_json(s: ServingState, record: Deployment | None = None) -> dict[str, Any]:
    """One serving process's report; ``converged`` compares it with the record (when given)."""
    converged = {} if record is None else {"converged": s.state == "ready" and s.generation == record.generation
                                                        and s.version == record.version}
    return {**to_json(s), **converged}


def audit_json(e: AuditEvent) -> dict[str, Any]:
    """An audit event."""
    return to_json(e)


def job_json(j: Job) -> dict[str, Any]:
    """A job record (the form :func:`modelyard.jobs.job_to_json` persists)."""
    return to_json(j)


def page_json(page: Page[Any], item: Callable[[Any], dict[str, Any]] | None = None) -> dict[str, Any]:
    """A page: ``{"items": [...], "total", "offset", "next_offset"}``.

    ``item`` is accepted for the existing calls (``page_json(page, model_json)``) and not needed: every record
    has one JSON form.
    """
    return to_json(page)


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
