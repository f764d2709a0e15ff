"""``modelyard serve``: run the bundled server on the platform the config describes."""

from __future__ import annotations

from typing import Annotated, Any

import typer


def serve_command(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option("--host", help="Interface to listen on (default: \\[server] host).",
                                             show_default=False)] = None,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535, help="Port (default: \\[server] port; 0 picks a free one).",
                                             show_default=False)] = None,
    dev: Annotated[bool, typer.Option("--dev", help="Development mode: allows the 'anonymous' auth provider "
                                                   "and logs to the console.")] = False,
    config: Annotated[str | None, typer.Option("--config", "-c", metavar="PATH",
                                               help="Config file (overrides the global --config).",
                                               show_default=False)] = None,
) -> None:
    """Serve the platform over HTTP: the Open Inference Protocol (/v2) and the API (/api/v1)."""
    from modelyard.cli.app import get_state
    from modelyard.errors import InvalidInput

    from modelyard_plugins.server.serve import serve

    state = get_state(ctx)
    if state.server:
        raise InvalidInput("`modelyard serve` runs a local platform; it cannot be used with --server",
                           field="server")
    serve(config or state.config_source(), host=host, port=port, dev=True if dev else None,
          plugin_manager=state.platform_plugin_manager())


def register(cli: Any) -> None:
    """Add ``serve`` to the root Typer app."""
    cli.command("serve")(serve_command)
