"""modelyard plugin ``server``: the bundled HTTP server (Litestar on uvicorn) and ``modelyard serve``.

It contributes the ``[server]`` config section, the V2 protocol and ``/api/v1`` routes (through
``modelyard_http_routes``, as any plugin may) and the ``serve`` command. This module stays light — Litestar and
uvicorn are imported only when an app is built or the server runs — because every CLI start loads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from modelyard import hookimpl
from modelyard.hookspecs.server import ConfigSection

from modelyard_plugins.server.config import ServerConfig


@hookimpl
def modelyard_config_sections() -> Iterator[ConfigSection]:
    """Declare ``[server]``: host, port, dev, max_body_mb, max_upload_mb, workers."""
    yield ConfigSection(name="server", schema=ServerConfig,
                        description="the bundled server: listen address, dev mode, body and upload limits, workers")


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
