"""Extension hooks: plugins add HTTP routes, CLI commands and config sections."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from modelyard.hookspecs.markers import hookspec

if TYPE_CHECKING:
    from modelyard.platform import Platform


@attrs.frozen(kw_only=True)
class ConfigSection:
    """A top-level config section a plugin adds, e.g. ``[server]``, validated against ``schema`` (attrs)."""

    name: str
    schema: type
    description: str = ""


@hookspec
def modelyard_http_routes(platform: Platform) -> Iterable[Any]:  # type: ignore[empty-body]
    """Contribute Litestar route handlers, controllers or routers to the server.

    Called once per app, by ``create_app(platform)``, before the app starts.

    Args:
        platform: the platform the routes act on (handlers call its methods; no business logic in handlers).

    Returns:
        An iterable of Litestar route handlers / ``Controller`` classes / ``Router`` objects.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_http_routes(platform):
                @get("/api/v1/hello")
                async def hello() -> dict:
                    return {"models": platform.registry.list_models().total}
                return [hello]
    """


@hookspec
def modelyard_cli_commands(cli: Any) -> None:
    """Add commands to the ``modelyard`` CLI.

    Called once when the CLI starts, with the root ``typer.Typer`` app. Keep imports inside the commands so that
    ``modelyard --help`` stays fast and light.

    Args:
        cli: the root Typer application; call ``cli.command()`` or ``cli.add_typer()``.

    Returns:
        Nothing; all implementations are called.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_cli_commands(cli):
                @cli.command()
                def hello():
                    print("hello")
    """


@hookspec
def modelyard_config_sections() -> Iterable[ConfigSection]:  # type: ignore[empty-body]
    """Declare extra top-level config sections (``[server]``, …) and their schemas.

    Called once per config validation. Unknown sections are errors, so a plugin that reads its own section must
    declare it here.

    Returns:
        An iterable of :class:`ConfigSection`.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_config_sections():
                yield ConfigSection(name="server", schema=ServerConfig)
    """
