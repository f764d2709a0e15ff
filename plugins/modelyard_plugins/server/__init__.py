"""modelyard plugin ``server``: the bundled HTTP server (Litestar on uvicorn) and ``modelyard serve``.

It contributes the ``[server]`` config section, the V2 protocol and ``/api/v1`` routes (through
``modelyard_http_routes``, as any plugin may), the actions of the routes that call no Platform verb (through
``modelyard_actions``) and the ``serve`` command. This module stays light — Litestar and
uvicorn are imported only when an app is built or the server runs — because every CLI start loads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from modelyard import hookimpl
from modelyard.actions import Action
from modelyard.providers import ConfigSection

from modelyard_plugins.server.config import ServerConfig


@hookimpl
def modelyard_config_sections() -> Iterator[ConfigSection]:
    """Declare ``[server]``: host, port, dev, max_body_mb, max_upload_mb, workers."""
    yield ConfigSection(name="server", schema=ServerConfig,
                        description="the bundled server: listen address, dev mode, body and upload limits, workers")


@hookimpl
def modelyard_actions() -> Iterator[Action]:
    """The actions of this plugin's routes that no core verb names: the plugin listing, the audit log and the V2
    server metadata."""
    yield Action(name="plugins:read", resources="plugins", role="maintainer",
                 description="List the installed plugins, their hooks and the providers of every slot.")
    yield Action(name="audit:read", resources="audit", role="admin",
                 description="Read the audit log: who did what, on what, when, and how it ended.")
    yield Action(name="server:read", resources="server",
                 description="Read the server's V2 metadata: its name, version and protocol extensions.")


@hookimpl
def modelyard_http_routes(platform: Any) -> list[Any]:
    """The Open Inference Protocol under ``/v2`` and the registry and deployment API under ``/api/v1``."""
    from modelyard_plugins.server.routes import route_handlers

    return route_handlers(platform)


@hookimpl
def modelyard_cli_commands(cli: Any) -> None:
    """Add ``modelyard serve``."""
    from modelyard_plugins.server.cli import register

    register(cli)


__all__ = ["ServerConfig"]
