"""The root of the ``modelyard`` CLI: global options, the per-invocation state, error → exit-code mapping, and
the assembly of the Typer app (core commands plus whatever plugins add through ``modelyard_cli_commands``).

Exit codes: 0 success; 1 the operation failed (unknown model, build failed, server unreachable, …); 2 the
command line or the config is wrong (usage errors, :class:`~modelyard.errors.ConfigError`,
:class:`~modelyard.errors.InvalidInput`). Errors go to stderr as one line (a ConfigError as its full report).
"""

from __future__ import annotations

import os
import sys
import tomllib
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import attrs
import structlog
import typer
from typer.core import TyperGroup

from modelyard import log as logconf
from modelyard.errors import ConfigError, InvalidInput, ModelyardError, PluginError

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@attrs.define
class CliState:
    """What one invocation knows: where the config is, which server (if any), and the backend once opened.

    Commands, plugin commands included, reach it with :func:`get_state`. The backend is opened lazily, so
    ``init``, ``check`` and ``--help`` never assemble a platform.
    """

    config: str | None = None
    server: str | None = None
    api_key: str | None = None
    plugin_manager_factory: Callable[[], Any] | None = None
    operation_id: str = attrs.field(factory=lambda: uuid.uuid4().hex[:16])
    _backend: Any = None

    def config_source(self) -> str | None:
        """The config path given by ``-c``/``MODELYARD_CONFIG``, or None for ``./modelyard.toml`` or defaults."""
        return self.config

    def platform_plugin_manager(self) -> Any:
        """A fresh plugin manager for the platform, or None to let the core build one from the config.

        Tests pass ``plugin_manager_factory`` to :func:`build_app` to assemble platforms from plugins of their
        own; otherwise the core discovers entry points and applies ``[platform] disable`` itself.
        """
        return self.plugin_manager_factory() if self.plugin_manager_factory is not None else None

    def listing_plugin_manager(self) -> Any:
        """A fresh plugin manager for listing plugins, honouring the config's ``disable`` without validating it."""
        pm = self.platform_plugin_manager()
        if pm is not None:
            return pm
        from modelyard.config import find_config_file
        from modelyard.plugins import get_plugin_manager

        path = find_config_file(self.config_source())
        return get_plugin_manager(disable=disabled_in_config(Path(path) if path else None))

    def backend(self) -> Any:
        """The embedded platform or the server client behind the command verbs (opened once)."""
        if self._backend is None:
            from modelyard.cli.backends import EmbeddedBackend, RemoteBackend

            if self.server:
                self._backend = RemoteBackend.connect(self.server, api_key=self.api_key)
            else:
                self._backend = EmbeddedBackend.from_config(self.config_source(),
                                                            plugin_manager=self.platform_plugin_manager())
        return self._backend

    def open_platform(self) -> Any:
        """An embedded :class:`~modelyard.platform.Platform` from the config (for commands such as ``serve``)."""
        if self.server:
            raise InvalidInput("this command runs a local platform; it cannot be used with --server", field="server")
        return self.backend().platform

    def close(self) -> None:
        """Close the backend, if one was opened."""
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()


def get_state(ctx: typer.Context) -> CliState:
    """The :class:`CliState` of the running invocation (set up by the root callback)."""
    state = ctx.find_object(CliState)
    if state is None:  # a command invoked without the root callback (e.g. a plugin testing its command alone)
        state = ctx.ensure_object(CliState)
    return state


def exit_code_for(exc: BaseException) -> int:
    """2 for config and input problems, 1 for everything else that went wrong."""
    return EXIT_USAGE if isinstance(exc, ConfigError | InvalidInput) else EXIT_FAILED


def report_error(exc: BaseException) -> int:
    """Print ``exc`` to stderr as the user should see it and return the exit code."""
    if isinstance(exc, ConfigError):
        message = exc.report()
    elif isinstance(exc, ModelyardError):
        message = f"error: {logconf.redact(str(exc))}"
    elif type(exc).__module__.split(".")[0] in ("httpx", "httpcore"):
        message = f"error: request to the server failed: {type(exc).__name__}: {logconf.redact(str(exc))}"
    elif isinstance(exc, OSError):
        message = f"error: {exc}"
    else:
        message = f"error: unexpected {type(exc).__name__}: {logconf.redact(str(exc))}"
        log.debug("unexpected error", exc_info=exc)
    typer.echo(message, err=True)
    return exit_code_for(exc)


class ModelyardGroup(TyperGroup):
    """The root command group: turns modelyard errors raised by any command (plugin commands included) into
    one stderr line and the documented exit code instead of a traceback."""

    def invoke(self, ctx: Any) -> Any:
        """Run the command; map exceptions to exit codes."""
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            # Typer's vendored click raises its own usage/exit exceptions; let them through untouched.
            if type(exc).__module__.startswith(("typer", "click")):
                raise
            raise typer.Exit(report_error(exc)) from None
        finally:
            structlog.contextvars.clear_contextvars()


def _root_callback(plugin_manager_factory: Callable[[], Any] | None) -> Callable[..., None]:
    def root(
        ctx: typer.Context,
        config: Annotated[str | None, typer.Option("--config", "-c", envvar="MODELYARD_CONFIG", metavar="PATH",
                                                   help="Config file (default: ./modelyard.toml, else built-in defaults).")
                          ] = None,
        server: Annotated[str | None, typer.Option("--server", envvar="MODELYARD_SERVER", metavar="URL",
                                                   help="Act on a running modelyard server instead of a local platform.")
                          ] = None,
        api_key: Annotated[str | None, typer.Option("--api-key", envvar="MODELYARD_API_KEY", metavar="KEY",
                                                    help="API key for --server.", show_default=False)] = None,
    ) -> None:
        """modelyard: register, build, deploy and serve models on a platform assembled from plugins."""
        if api_key:
            logconf.register_secret(api_key)
        state = ctx.ensure_object(CliState)
        state.config, state.server, state.api_key = config, server or None, api_key
        state.plugin_manager_factory = plugin_manager_factory
        logconf.configure("info", "auto")
        structlog.contextvars.bind_contextvars(operation_id=state.operation_id, command=ctx.invoked_subcommand)
        ctx.call_on_close(state.close)

    return root


def build_app(plugin_manager: Any = None, *, plugin_manager_factory: Callable[[], Any] | None = None
              ) -> typer.Typer:
    """A fresh ``modelyard`` Typer app: the core commands, then every plugin's ``modelyard_cli_commands``.

    Args:
        plugin_manager: whose plugins may add commands; None adds none (what most tests want). :func:`main`
            passes one built from the installed entry points.
        plugin_manager_factory: builds a fresh plugin manager each time a command assembles a platform, checks
            the config or lists plugins; None lets the core discover entry points (tests pass their own).
    """
    from modelyard.cli import config as config_cmds
    from modelyard.cli import deployments, models, plugins

    app = typer.Typer(name="modelyard", cls=ModelyardGroup, no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False, rich_markup_mode="rich",
                      context_settings={"help_option_names": ["-h", "--help"]})
    app.callback()(_root_callback(plugin_manager_factory))
    config_cmds.register(app)
    plugins.register(app)
    models.register(app)
    deployments.register(app)
    if plugin_manager is not None:
        plugin_manager.hook.modelyard_cli_commands(cli=app)
    return app


def _config_path_from_argv(argv: Sequence[str]) -> Path | None:
    # Only the root takes -c/--config, but scanning everything is harmless and keeps this cheap.
    for i, arg in enumerate(argv):
        if arg in ("-c", "--config") and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1])
    if os.environ.get("MODELYARD_CONFIG"):
        return Path(os.environ["MODELYARD_CONFIG"])
    return Path("modelyard.toml") if Path("modelyard.toml").is_file() else None


def disabled_in_config(path: Path | None) -> list[str]:
    """``[platform] disable`` of a config file, read without validating it (a broken file gives ``[]``)."""
    if path is None:
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    platform = data.get("platform")
    disable = platform.get("disable") if isinstance(platform, dict) else None
    return [d for d in disable if isinstance(d, str)] if isinstance(disable, list) else []


def _show_warning(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:
    # A broken third-party plugin is worth one readable line, not a source excerpt from plugins.py.
    from modelyard.plugins import PluginLoadWarning

    if issubclass(category, PluginLoadWarning):
        # Several plugin managers may be built in one run (commands, config check, platform): say it once.
        if str(message) not in _shown:
            _shown.add(str(message))
            typer.echo(f"warning: {message}", err=True)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning
_shown: set[str] = set()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``modelyard`` script."""
    from modelyard.plugins import get_plugin_manager

    warnings.showwarning = _show_warning
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # Plugins may add commands, so they are loaded before parsing; plugin modules are light by rule.
        pm = get_plugin_manager(disable=disabled_in_config(_config_path_from_argv(args)))
    except PluginError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    build_app(pm)(args=args, prog_name="modelyard")
