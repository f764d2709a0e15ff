"""The root of the ``modelyard`` CLI: global options, the per-invocation state, error → exit-code mapping, and
the assembly of the Typer app (core commands plus whatever plugins add through ``modelyard_cli_commands``).

Exit codes: 0 success; 1 the operation failed (unknown model, build failed, server unreachable, …); 2 the
command line or the config is wrong (usage errors, :class:`~modelyard.errors.ConfigError`,
:class:`~modelyard.errors.InvalidInput`). Errors go to stderr as one line (a ConfigError as its full report);
with ``--json`` the same error is also printed on stdout as ``{"error": {...}}`` (see :func:`error_json`).

Commands that act on a local platform keep its log to warnings and errors, one plain line each
(:func:`modelyard.log.pin`): a person at a terminal sees the command's output or its one error line, not JSON
log records. ``-v/--verbose`` shows the log as ``[platform] log_level`` and ``log_format`` configure it.

Some rules hold for every command's values and are checked while parsing, for plugin commands too
(:func:`check_value`): an option named ``--port`` takes 0 to 65535, no number option takes ``nan`` or ``inf``,
and text must be UTF-8 unless it names a file that exists.

``-c/--config`` is accepted before the command and after it (every command gets it); the one after wins.
"""

from __future__ import annotations

import copy
import math
import os
import re
import sys
import tomllib
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import attrs
import structlog
import typer
from typer.core import TyperGroup

from modelyard import log as logconf
from modelyard.errors import ConfigError, InvalidInput, ModelyardError, PluginError

if TYPE_CHECKING:
    from modelyard.api import PlatformAPI
    from modelyard.platform import Platform

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@attrs.define
class CliState:
    """What one invocation knows: where the config is, which server (if any), and what it acts on once opened.

    Commands, plugin commands included, reach it with :func:`get_state`. The platform or client (:meth:`api`) is
    opened lazily, so ``init``, ``check`` and ``--help`` never assemble a platform.
    """

    config: str | None = None
    server: str | None = None
    api_key: str | None = None
    plugin_manager_factory: Callable[[], Any] | None = None
    #: ``--json`` was given: errors are printed on stdout as JSON too.
    json: bool = False
    #: ``-v/--verbose`` was given: the platform logs as its config says instead of keeping to warnings.
    verbose: bool = False
    operation_id: str = attrs.field(factory=lambda: uuid.uuid4().hex[:16])
    _api: Any = None
    _quiet: bool = False

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

    def quiet_logs(self) -> None:
        """For a one-shot command on a local platform: log only warnings and errors, one plain line each, until
        :meth:`close` — unless ``-v`` or ``MODELYARD_TRACE_PLUGINS=1`` asked for the log."""
        if self._quiet or self.verbose or tracing_plugins():
            return
        logconf.pin("warning", "plain")
        self._quiet = True

    def api(self, *, quiet: bool = True) -> PlatformAPI:
        """What the command acts on, opened once: a :class:`~modelyard.client.Client` of the ``--server``, else
        the :class:`~modelyard.platform.Platform` the config assembles — both :class:`~modelyard.api.PlatformAPI`,
        so a command calls the same verbs and gets the same records either way.

        ``quiet`` (one-shot commands): see :meth:`quiet_logs`; a long-running command passes False.
        """
        if self._api is None:
            if self.server:
                from modelyard.client import Client

                self._api = Client(self.server, api_key=self.api_key or None)
            else:
                from modelyard.platform import Platform

                if quiet:
                    self.quiet_logs()
                platform = Platform.from_config(self.config_source(), plugin_manager=self.platform_plugin_manager())
                self._api = platform
                if tracing_plugins():
                    # The platform set the config's log level; the hook trace is debug and was asked for.
                    logconf.configure("debug", platform.config.platform.log_format)
        return self._api

    #: The former name of :meth:`api`, for plugin commands written against it.
    backend = api

    def open_platform(self) -> Platform:
        """An embedded :class:`~modelyard.platform.Platform` from the config (for commands such as ``serve``,
        which keep logging as the config says)."""
        if self.server:
            raise InvalidInput("this command runs a local platform; it cannot be used with --server", field="server")
        return self.api(quiet=False)  # type: ignore[return-value]  # no --server: the Platform

    def close(self) -> None:
        """Close the platform or the client, if one was opened, then give logging back to the configuration."""
        api, self._api = self._api, None
        try:
            if api is not None:
                api.close()
        finally:
            if self._quiet:
                self._quiet = False
                logconf.unpin()


def get_state(ctx: typer.Context) -> CliState:
    """The :class:`CliState` of the running invocation (set up by the root callback)."""
    state = ctx.find_object(CliState)
    if state is None:  # a command invoked without the root callback (e.g. a plugin testing its command alone)
        state = ctx.ensure_object(CliState)
    return state


def exit_code_for(exc: BaseException) -> int:
    """2 for config and input problems (text that is not UTF-8 included), 1 for everything else that went
    wrong."""
    return EXIT_USAGE if isinstance(exc, ConfigError | InvalidInput | UnicodeEncodeError) else EXIT_FAILED


def tracing_plugins() -> bool:
    """``MODELYARD_TRACE_PLUGINS=1``: every hook call is logged (at debug, so the CLI logs at debug then)."""
    return os.environ.get("MODELYARD_TRACE_PLUGINS") == "1"


_EXPECTED = re.compile(r"\bexpected (?P<expected>.+?)(?:, got\b|$)")


def _issue_json(issue: Any) -> dict[str, Any]:
    """One :class:`~modelyard.errors.ConfigIssue` as JSON; ``expected`` is read from the message when it says."""
    given = issue.given
    out: dict[str, Any] = {"line": issue.line, "section": issue.section, "key": issue.key,
                           # A resolved ${secret:…} may be the value that was rejected.
                           "given": logconf.redact(given) if isinstance(given, str) else given,
                           "message": issue.message}
    found = _EXPECTED.search(issue.message)
    if found:
        out["expected"] = found["expected"]
    if issue.file:
        out["file"] = issue.file
    return out


def issues_json(exc: ConfigError) -> list[dict[str, Any]]:
    """Every issue of a ConfigError as JSON: line, section, key, given, message and, where stated, expected."""
    return [_issue_json(i) for i in exc.issues]


def error_json(exc: BaseException) -> dict[str, Any]:
    """``{"error": {"type", "message", "status", "field"?, "issues"?}}``: what ``--json`` prints on failure.

    ``status`` is the HTTP status of a modelyard error (None for others); ``field`` names the culprit of an
    :class:`~modelyard.errors.InvalidInput`; ``issues`` lists a ConfigError's problems.
    """
    if isinstance(exc, ConfigError):
        message = f"{exc.file or 'config'}: {len(exc.issues)} error{'s' if len(exc.issues) != 1 else ''}"
    elif isinstance(exc, ModelyardError):
        message = logconf.redact(exc.message)
    else:
        message = logconf.redact(getattr(exc, "message", None) or str(exc))
    error: dict[str, Any] = {"type": type(exc).__name__, "message": message,
                             "status": exc.status if isinstance(exc, ModelyardError) else None}
    if getattr(exc, "field", None) is not None:
        error["field"] = exc.field  # type: ignore[attr-defined]
    if isinstance(exc, ConfigError):
        error["issues"] = issues_json(exc)
    return {"error": error}


def report_error(exc: BaseException, *, as_json: bool = False) -> int:
    """Print ``exc`` to stderr as the user should see it (and, ``as_json``, on stdout as :func:`error_json`);
    return the exit code."""
    if isinstance(exc, ConfigError):
        message = exc.report()
    elif isinstance(exc, ModelyardError):
        message = f"error: {logconf.redact(str(exc))}"
    elif type(exc).__module__.split(".")[0] in ("httpx", "httpcore"):
        message = f"error: request to the server failed: {type(exc).__name__}: {logconf.redact(str(exc))}"
    elif isinstance(exc, OSError):
        message = f"error: {exc}"
    elif isinstance(exc, UnicodeEncodeError):
        # Text that is not UTF-8 reached something that needs it (a file name or environment variable in
        # another encoding): the input is at fault, not modelyard.
        bad = exc.object[exc.start:exc.end] if isinstance(exc.object, str) else ""
        message = f"error: {bad!r} is not UTF-8 text; use UTF-8 for names, values and file names"
    else:
        message = f"error: unexpected {type(exc).__name__}: {logconf.redact(str(exc))}"
        log.debug("unexpected error", exc_info=exc)
    if as_json:
        from modelyard.cli.output import print_json

        print_json(error_json(exc))
    typer.echo(message, err=True)
    return exit_code_for(exc)


#: Options that name a TCP port, in any command (plugin commands included).
PORT_OPTIONS = frozenset({"--port"})


def _undecodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_value(param: Any, value: Any) -> None:
    """The rules every command's options share; raise :class:`typer.BadParameter` (exit 2) naming the option.

    Text must be UTF-8 (the shell passes other bytes through as lone surrogates, which no database, JSON
    document or HTTP request can carry), except the name of a file that exists; numbers must be finite; a
    ``--port`` is 0 to 65535.
    """
    values = value if isinstance(value, list | tuple) else (value,)
    for v in values:
        if isinstance(v, str) and _undecodable(v) and not os.path.lexists(v.removeprefix("@")):
            raw = v.encode("utf-8", "surrogateescape")
            raise typer.BadParameter(f"{v!r} is not UTF-8 text (the bytes {raw!r}); set a UTF-8 locale or "
                                     "pass the value in UTF-8", param=param)
        if isinstance(v, float) and not math.isfinite(v):
            raise typer.BadParameter(f"{v} is not a finite number", param=param)
        if (isinstance(v, int) and not isinstance(v, bool) and PORT_OPTIONS & set(param.opts)
                and not 0 <= v <= 65535):
            raise typer.BadParameter(f"{v} is not a TCP port: expected 0 to 65535 (0 picks a free port)",
                                     param=param)


def _checking(original: Callable[..., Any] | None) -> Callable[..., Any]:
    def callback(ctx: Any, param: Any, value: Any) -> Any:
        check_value(param, value)
        return original(ctx, param, value) if original is not None else value

    return callback


def _set_config(ctx: Any, _param: Any, value: str | None) -> str | None:
    # Runs while the command's own options are parsed, i.e. after the root callback: the later -c wins.
    if value is not None:
        get_state(ctx).config = value
    return value


def _recording_json(original: Callable[..., Any] | None) -> Callable[..., Any]:
    def callback(ctx: Any, param: Any, value: Any) -> Any:
        if value:
            get_state(ctx).json = True
        return original(ctx, param, value) if original is not None else value

    return callback


def _config_option() -> Any:
    """A fresh ``-c/--config`` option for a command, built by Typer from a signature (no private API)."""
    probe = typer.Typer(add_completion=False)

    @probe.command()
    def _probe(config: Annotated[str | None, typer.Option(
            "--config", "-c", metavar="PATH", show_default=False,
            help="Config file (overrides one given before the command).")] = None) -> None:
        """Never run."""

    (param,) = [p for p in typer.main.get_command(probe).params if p.name == "config"]
    param.expose_value = False  # the command reads it from get_state(ctx), not from an argument
    param.callback = _set_config
    return param


def add_common_options(command: Any, config_option: Any = None) -> None:
    """Give ``command`` (and, for a group, every command in it) ``-c/--config`` unless it declares its own, and
    make its ``--json`` flag switch errors to JSON too."""
    config_option = config_option if config_option is not None else _config_option()
    subcommands = getattr(command, "commands", None)
    if subcommands is not None:
        for sub in subcommands.values():
            add_common_options(sub, config_option)
        return
    opts = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    if not opts & {"-c", "--config"}:
        command.params.append(copy.copy(config_option))
    for param in command.params:
        if "--json" in param.opts:
            param.callback = _recording_json(param.callback)
        elif not getattr(param, "is_flag", False) and not getattr(param, "is_eager", False):
            param.callback = _checking(param.callback)


class ModelyardGroup(TyperGroup):
    """The root command group: turns modelyard errors raised by any command (plugin commands included) into
    one stderr line (and, with ``--json``, a JSON error on stdout) and the documented exit code instead of a
    traceback; gives every command ``-c/--config``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        config_option = _config_option()
        for command in self.commands.values():
            add_common_options(command, config_option)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Parse the root options, remembering the raw arguments for :meth:`invoke`."""
        # For errors raised before --json was parsed (usage errors), the raw arguments are all there is.
        ctx.meta["modelyard.args"] = args[:args.index("--")] if "--" in args else list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        """Run the command; map exceptions to exit codes."""
        args = ctx.meta.get("modelyard.args", ())
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            as_json = "--json" in args or (isinstance(ctx.obj, CliState) and ctx.obj.json)
            # Typer's vendored click raises its own usage/exit exceptions; let them through untouched.
            if type(exc).__module__.startswith(("typer", "click")):
                if as_json and hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
                    from modelyard.cli.output import print_json

                    print_json({"error": {"type": type(exc).__name__, "message": exc.format_message(),
                                          "status": None}})
                raise
            raise typer.Exit(report_error(exc, as_json=as_json)) from None
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
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help=(
            "Show the local platform's log on stderr as [platform] log_level and log_format say (by default "
            "commands show only its warnings and errors, one line each)."))] = False,
    ) -> None:
        """modelyard: register, build, deploy and serve models on a platform assembled from plugins."""
        if api_key:
            logconf.register_secret(api_key)
        state = ctx.ensure_object(CliState)
        state.config, state.server, state.api_key = config, server or None, api_key
        state.verbose = verbose
        state.plugin_manager_factory = plugin_manager_factory
        logconf.configure("debug" if tracing_plugins() else "info", "auto")
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
    # -c/--config may come before or after the command; the last one given wins, as it does when parsed.
    for i, arg in reversed(list(enumerate(argv))):
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
    from modelyard.config import MAX_CONFIG_BYTES

    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)  # bounded, like the real load: -c /dev/zero must not fill memory
        data = tomllib.loads(raw.decode("utf-8-sig")) if len(raw) <= MAX_CONFIG_BYTES else {}
    except (OSError, ValueError):  # unreadable, not UTF-8, not TOML (TOMLDecodeError is a ValueError)
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
    # Before the plugin manager exists: its hook trace must reach stderr, never stdout (where --json goes).
    logconf.configure("debug" if tracing_plugins() else "info", "auto")
    try:
        # Plugins may add commands, so they are loaded before parsing; plugin modules are light by rule.
        pm = get_plugin_manager(disable=disabled_in_config(_config_path_from_argv(args)))
    except PluginError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    build_app(pm)(args=args, prog_name="modelyard")
