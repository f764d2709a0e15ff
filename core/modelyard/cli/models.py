"""``modelyard models …``: register, list, show and alias model versions."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from modelyard.cli.app import get_state
from modelyard.cli.output import (
    model_table,
    models_table,
    print_json,
    print_table,
    version_table,
    versions_table,
)
from modelyard.cli.parsing import parse_pairs

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]

models_app = typer.Typer(name="models", help="Register, list, show and alias model versions.",
                         no_args_is_help=True)


def _lineage(values: list[str] | None) -> dict[str, Any]:
    # Repeating --lineage dataset=… adds datasets instead of replacing the previous one.
    out: dict[str, Any] = {}
    for value in values or ():
        pair = parse_pairs([value], option="--lineage")
        (key, val), = pair.items()
        if key in ("dataset", "datasets"):
            out.setdefault("datasets", []).append(val)
        else:
            out[key] = val
    return out


@models_app.command("register")
def register_version(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    path: Annotated[str, typer.Argument(help="The model file or directory (or an fsspec URL such as s3://…).")],
    flavor: Annotated[str, typer.Option("--flavor", "-f", help="Builder to use: onnx, torch, tensorflow, sklearn…")],
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", metavar="KEY=VALUE", help="Version tag (repeat).")
                   ] = None,
    alias: Annotated[str | None, typer.Option("--alias", "-a", help="Point this alias at the new version.")] = None,
    lineage: Annotated[list[str] | None, typer.Option(
        "--lineage", "-l", metavar="KEY=VALUE",
        help="Provenance: source_run, dataset (repeat), code_ref, parent_version, or any key.")] = None,
    description: Annotated[str, typer.Option("--description", "-d", help="Free text.")] = "",
    json_: JsonOption = False,
) -> None:
    """Build PATH with the flavor's builder and record it as the next version of NAME."""
    tags, provenance = parse_pairs(tag, option="--tag"), _lineage(lineage)  # usage errors before any work
    version = get_state(ctx).backend().register(name, path, flavor=flavor, tags=tags, alias=alias,
                                                lineage=provenance, description=description)
    if json_:
        print_json(version)
    else:
        print_table(version_table(version))


@models_app.command("list")
def list_models(
    ctx: typer.Context,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Only names starting with this.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", metavar="KEY=VALUE",
                                                  help="Only models with this tag (repeat: all must match).")] = None,
    alias: Annotated[str | None, typer.Option("--alias", "-a", help="Only models that have this alias.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Page size.")] = 100,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many models.")] = 0,
    json_: JsonOption = False,
) -> None:
    """List models, filtered by name prefix, tags and alias."""
    tags = parse_pairs(tag, option="--tag")
    page = get_state(ctx).backend().list_models(prefix=prefix, tags=tags, alias=alias, offset=offset, limit=limit)
    if json_:
        print_json(page)
    else:
        print_table(models_table(page))


@models_app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="NAME[:VERSION|@ALIAS]", help="A model, or one of its versions.")],
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Versions to list for a bare NAME.")] = 20,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many versions.")] = 0,
    json_: JsonOption = False,
) -> None:
    """Show a model (summary and versions) or, with :VERSION or @ALIAS, one version's details."""
    from modelyard.types import ModelRef

    parsed = ModelRef.parse(ref)  # InvalidInput (exit 2) for a malformed reference
    backend = get_state(ctx).backend()
    if ":" in ref or "@" in ref:
        version = backend.get_version(ref)
        if json_:
            print_json(version)
        else:
            print_table(version_table(version))
        return
    model = backend.get_model(parsed.name)
    versions = backend.list_versions(parsed.name, offset=offset, limit=limit)
    if json_:
        print_json({"model": model, "versions": versions})
    else:
        print_table(model_table(model))
        print_table(versions_table(versions))


@models_app.command("alias")
def alias_version(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(min=1, help="Version number.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production.")],
    json_: JsonOption = False,
) -> None:
    """Point ALIAS at VERSION of NAME (moving it if it pointed elsewhere)."""
    result = get_state(ctx).backend().set_alias(name, version, alias)
    if json_:
        print_json(result)
    else:
        print_table(version_table(result))


def register(app: typer.Typer) -> None:
    """Add the ``models`` group to the root app."""
    app.add_typer(models_app)
