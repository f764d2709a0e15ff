"""``/api/v1/plugins`` (what is installed and what it offers) and ``/api/v1/audit`` (who did what).

Their handlers call no checking Platform verb, so the server's middleware makes each request's one decision
(``plugins:read``, ``audit:read``: actions this plugin adds to the catalogue).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import FromQuery
from modelyard.serialize import plugins_json

from modelyard_plugins.server.responses import AuditOut, PageOut, wire


class SystemController(Controller):
    """Platform-wide information."""

    path = "/api/v1"
    tags = ["system"]

    @get("/plugins", opt={"action": "plugins:read", "resource": "plugins"}, sync_to_thread=True,
         summary="Installed plugins and providers")
    def plugins(self, request: Request) -> dict[str, Any]:
        """Each plugin with its distribution, version and hooks; each slot's providers (as ``modelyard
        plugins``)."""
        return plugins_json(request.app.state.platform.plugin_manager)

    @get("/audit", opt={"action": "audit:read", "resource": "audit"}, sync_to_thread=True,
         summary="Audit log")
    def audit(self, request: Request, resource: FromQuery[str | None] = None, offset: FromQuery[int] = 0,
              limit: FromQuery[int] = 100) -> PageOut[AuditOut]:
        """Audited actions, newest first, optionally for one ``resource`` (e.g. ``models/churn``)."""
        page = request.app.state.platform.registry_backend.list_audit(resource=resource, offset=offset,
                                                                      limit=limit)
        return wire(PageOut[AuditOut], page)
