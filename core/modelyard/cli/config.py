"""``modelyard init`` (write a commented config) and ``modelyard check`` (validate it, report every error)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli.app import EXIT_FAILED, EXIT_USAGE, error_json, get_state, issues_json
from modelyard.cli.output import print_json, print_line, print_table, slots_table
from modelyard.errors import ConfigError, InvalidInput

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def template_text() -> str:
    """The commented ``modelyard.toml`` that ``init`` writes: every section, set to the embedded defaults."""
    return resources.files("modelyard").joinpath("templates", "modelyard.toml").read_text(encoding="utf-8")


def init(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="File to write, or a directory to write modelyard.toml into.")
                    ] = Path("modelyard.toml"),
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing file.")] = False,
    json_: JsonOption = False,
) -> None:
    """Write a commented modelyard.toml with the embedded defaults (every section shown)."""
    target = path / "modelyard.toml" if path.is_dir() else path
    if target.exists() and not force:
        typer.echo(f"error: {target} exists; use --force to overwrite it", err=True)
        raise typer.Exit(EXIT_FAILED)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(template_text(), encoding="utf-8")
    except (OSError, ValueError) as exc:  # under a file, unwritable, a NUL in the name, …
        if isinstance(exc, FileExistsError | NotADirectoryError):
            reason = "a folder on the way is a file"
        else:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidInput(f"cannot write {str(target)!r}: {reason}", field="path") from None
    if json_:
        print_json({"path": str(target), "written": True})
    else:
        print_line(f"wrote {target} — check it with: modelyard check -c {target}")


def check(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Load the config, resolve ${env:…} and ${secret:…}, validate every section; report all errors at once."""
    from modelyard.platform import resolve

    state = get_state(ctx)
    state.quiet_logs()
    try:
        resolved = resolve(state.config_source(), plugin_manager=state.platform_plugin_manager())
    except ConfigError as exc:
        if json_:
            # The check report and the error object every command prints with --json, in one document.
            print_json({"file": exc.file, "ok": False, "errors": issues_json(exc), **error_json(exc)})
        typer.echo(exc.report(), err=True)
        raise typer.Exit(EXIT_USAGE) from None
    name = resolved.file or "defaults (no config file)"
    slots = {slot: [c.provider.name for c in choices] for slot, choices in resolved.slots.items()}
    if json_:
        print_json({"file": resolved.file, "ok": True, "slots": slots,
                    "data_dir": resolved.platform.data_dir, "sections": sorted(resolved.sections)})
        return
    print_line(f"[green]{name}: OK[/green]")
    print_table(slots_table(slots))


def register(app: typer.Typer) -> None:
    """Add ``init`` and ``check`` to the root app."""
    app.command("init")(init)
    app.command("check")(check)
