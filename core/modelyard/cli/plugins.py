"""``modelyard plugins``: the installed plugins, their hooks, and the providers they offer per slot."""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli.app import get_state
from modelyard.cli.output import plugins_table, print_json, print_table, providers_table


def plugins(
    ctx: typer.Context,
    json_: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """List slots → providers, and plugins → distribution, version, hooks."""
    state = get_state(ctx)
    if state.server:
        from modelyard.client import Client

        client = state.api()
        assert isinstance(client, Client)  # --server: the client
        report = client.plugins()
    else:
        # No platform is assembled: the listing must work even when the config does not validate.
        from modelyard.serialize import plugins_json

        report = plugins_json(state.listing_plugin_manager())
    if json_:
        print_json(report)
        return
    print_table(providers_table(report))
    print_table(plugins_table(report))


def register(app: typer.Typer) -> None:
    """Add ``plugins`` to the root app."""
    app.command("plugins")(plugins)
