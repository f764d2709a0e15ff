"""Extension hooks: plugins add HTTP routes, CLI commands and config sections."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from modelyard.hookspecs.markers import hookspec
from modelyard.providers import ConfigSection

if TYPE_CHECKING:
    from modelyard.platform import Platform

# ``ConfigSection`` lives in modelyard.providers with the other records a plugin offers; it is imported here
# (and listed in __all__) because modules that predate the move import it from this one.
__all__ = ["ConfigSection", "modelyard_cli_commands", "modelyard_config_sections", "modelyard_http_routes"]


@hookspec
def modelyard_http_routes(platform: Platform) -> Iterable[Any]:  # type: ignore[empty-body]
    """Contribute Litestar route handlers, controllers or routers to the server.

    Called once per app, by ``create_app(platform)``, before the app starts. Every route declares in ``opt``
    what it does — ``{"action": <a name from the action catalogue>, "resource": "models/{name}"}``, plus
    ``"decided_by": "platform"`` when its handler calls a checking Platform verb with
    ``principal=principal_of(request)`` — or ``{"public": True}``; ``create_app`` raises naming any other route
    and this plugin (deny by default). Each request is decided once: by the server before the handler, or by
    the verb the handler calls.

    Args:
        platform: the platform the routes act on (handlers call its methods; no business logic in handlers).

    Returns:
        An iterable of Litestar route handlers / ``Controller`` classes / ``Router`` objects.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_http_routes(platform):
                @get("/api/v1/hello", opt={"action": "models:read", "resource": "models",
                                           "decided_by": "platform"}, sync_to_thread=True)
                def hello(request: Request) -> dict:
                    return {"models": platform.registry.list_models(principal=principal_of(request)).total}
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
        An iterable of :class:`~modelyard.providers.ConfigSection`.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_config_sections():
                yield ConfigSection(name="server", schema=ServerConfig)
    """
