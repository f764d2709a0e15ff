"""``modelyard models …``: register, list, search, show and alias model versions.

Tags live at two levels: a *version* tag (``register --tag``) describes one build and is what ``models search
--tag`` finds; a *model* tag (``register --model-tag``) describes the model as a whole and is what ``models
list --tag`` filters on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
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
from modelyard.converter import to_json
from modelyard.errors import InvalidInput

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]

models_app = typer.Typer(name="models", help="Register, list, search, show and alias model versions.",
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


def _field(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


def _read_text(path_text: str, option: str) -> str:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise InvalidInput(f"{option} @{path_text}: no such file", field=_field(option))
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{option} @{path_text}: cannot read: {exc}", field=_field(option)) from None


def _json_value(value: str, option: str) -> Any:
    """Inline JSON, or the JSON in ``@file.json``."""
    text, source = (_read_text(value[1:], option), value) if value.startswith("@") else (value, "")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{option} {source or 'value'}: invalid JSON: {exc}", field=_field(option)) from None


def _json_object(value: str | None, option: str) -> dict[str, Any]:
    """``--options``: a JSON object, inline or in ``@file.json``."""
    if value is None:
        return {}
    decoded = _json_value(value, option)
    if not isinstance(decoded, dict):
        raise InvalidInput(f"{option}: expected a JSON object, got {type(decoded).__name__}", field=_field(option))
    return decoded


def build_options(pairs: Iterable[str] | None, document: str | None) -> dict[str, Any]:
    """``--options`` overlaid with each ``--option KEY=VALUE``, whose VALUE is read as JSON when it parses
    (``3``, ``true``, ``[...]``, ``{...}``) and as a string otherwise (``pkg.mod:make``)."""
    options = _json_object(document, "--options")
    for key, raw in parse_pairs(pairs, option="--option").items():
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def _load_numpy(path_text: str, option: str) -> Any:
    import numpy as np

    path = Path(path_text).expanduser()
    if not path.is_file():
        raise InvalidInput(f"{option} @{path_text}: no such file", field=_field(option))
    try:
        # allow_pickle=False: a sample file must never execute code (DESIGN: nothing is unpickled).
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"{option} @{path_text}: not a readable numpy file: {exc}", field=_field(option)) from None
    if path.suffix.lower() == ".npz":
        with loaded:
            return {k: loaded[k] for k in loaded.files}
    return loaded


def _tensor_value(value: str, option: str) -> Any:
    """The value after ``NAME=``: ``@file.npy``, ``@file.json`` or inline JSON (a nested list)."""
    if value.startswith("@") and value.lower().endswith(".npy"):
        return _load_numpy(value[1:], option)
    return _json_value(value, option)


def _named_tensors(value: str, option: str) -> dict[str, Any]:
    """One ``--sample-input`` / ``--expected-output`` value as tensors by name."""
    if value.startswith("@"):
        suffix = Path(value[1:]).suffix.lower()
        if suffix == ".npz":
            return _load_numpy(value[1:], option)
        if suffix == ".npy":  # one array, named after its file: @x.npy is input "x"
            return {Path(value[1:]).stem: _load_numpy(value[1:], option)}
    elif not value.lstrip().startswith("{"):
        name, sep, rest = value.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"{option} {value[:60]!r}: expected a JSON object, @file.json, @file.npy, @file.npz "
                               "or NAME=VALUE (VALUE: a JSON nested list, @file.npy or @file.json)",
                               field=_field(option))
        return {name.strip(): _tensor_value(rest, option)}
    decoded = _json_value(value, option)
    if not isinstance(decoded, dict):
        raise InvalidInput(f"{option}: expected a JSON object of tensors by name, got {type(decoded).__name__}",
                           field=_field(option))
    return decoded


def read_tensors(values: Iterable[str] | None, *, option: str) -> dict[str, Any] | None:
    """``--sample-input`` / ``--expected-output`` (repeatable) as arrays by name; None when not given.

    Each value is a JSON object (inline or ``@file.json``), an ``@file.npz`` (its arrays by name), an
    ``@file.npy`` (one array named after the file's stem) or ``NAME=VALUE``. A ``.npy`` keeps its dtype in
    embedded mode; over HTTP arrays travel as JSON numbers.
    """
    import numpy as np

    values = list(values or ())
    if not values:
        return None
    tensors: dict[str, Any] = {}
    for value in values:
        for name, data in _named_tensors(value, option).items():
            if name in tensors:
                raise InvalidInput(f"{option}: tensor {name!r} is given twice", field=_field(option))
            try:
                array = np.asarray(data)
            except (ValueError, TypeError) as exc:
                raise InvalidInput(f"{option}: tensor {name!r} is not an array (rows of unequal length?): "
                                   f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                                   field=_field(option)) from None
            if array.dtype == object:
                raise InvalidInput(f"{option}: tensor {name!r} must hold numbers, booleans or strings",
                                   field=_field(option))
            tensors[name] = array
    return tensors


@models_app.command("register")
def register_version(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    path: Annotated[str, typer.Argument(help="The model file or directory (or an fsspec URL such as s3://…).")],
    flavor: Annotated[str, typer.Option("--flavor", "-f", help="Builder to use: onnx, torch, tensorflow, sklearn…")],
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", "-t", metavar="KEY=VALUE",
        help="Tag on the new version (repeat); found by `models search --tag`.")] = None,
    model_tag: Annotated[list[str] | None, typer.Option(
        "--model-tag", metavar="KEY=VALUE",
        help="Tag on the model itself (repeat); filtered by `models list --tag`.")] = None,
    alias: Annotated[str | None, typer.Option("--alias", "-a", help="Point this alias at the new version.")] = None,
    lineage: Annotated[list[str] | None, typer.Option(
        "--lineage", "-l", metavar="KEY=VALUE",
        help="Provenance: source_run, dataset (repeat), code_ref, parent_version, or any key.")] = None,
    description: Annotated[str, typer.Option("--description", "-d", help="Free text.")] = "",
    option: Annotated[list[str] | None, typer.Option(
        "--option", metavar="KEY=VALUE",
        help="A build option of the flavor (repeat); VALUE is JSON when it parses, else a string, e.g. "
             "input_spec='[{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [-1, 4]}]'.")] = None,
    options: Annotated[str | None, typer.Option(
        "--options", metavar="JSON|@FILE.json", help="Build options as one JSON object; --option keys win.")] = None,
    sample_input: Annotated[list[str] | None, typer.Option(
        "--sample-input", metavar="JSON|@FILE|NAME=VALUE",
        help="Inputs for the validation run: a JSON object of nested lists by input name (inline or "
             "@FILE.json), a .npz of named arrays, a .npy array named after its file (@x.npy is input x), or "
             "NAME=JSON|@FILE.npy (repeat).")
    ] = None,
    expected_output: Annotated[list[str] | None, typer.Option(
        "--expected-output", metavar="JSON|@FILE|NAME=VALUE",
        help="Outputs the model must produce for --sample-input (within rtol 1e-4, atol 1e-5); same forms.")
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Build PATH with the flavor's builder and record it as the next version of NAME."""
    # Usage errors before any work (or any upload).
    tags, provenance = parse_pairs(tag, option="--tag"), _lineage(lineage)
    model_tags = parse_pairs(model_tag, option="--model-tag")
    build = build_options(option, options)
    sample = read_tensors(sample_input, option="--sample-input")
    expected = read_tensors(expected_output, option="--expected-output")
    registry = get_state(ctx).api().registry
    version = to_json(registry.register(name, path, flavor=flavor, tags=tags, alias=alias, lineage=provenance,
                                        description=description, options=build or None, sample_input=sample,
                                        expected_output=expected))
    if model_tags:
        # After registering: the first registration is what creates the model.
        registry.set_tags(name, model_tags)
    if json_:
        print_json(version)
    else:
        print_table(version_table(version))


@models_app.command("list")
def list_models(
    ctx: typer.Context,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Only names starting with this.")] = None,
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", "-t", metavar="KEY=VALUE",
        help="Only models with this MODEL tag (register --model-tag; repeat: all must match). For version "
             "tags (register --tag) use `models search --tag`.")] = None,
    alias: Annotated[str | None, typer.Option("--alias", "-a", help="Only models that have this alias.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Page size.")] = 100,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many models.")] = 0,
    json_: JsonOption = False,
) -> None:
    """List models, filtered by name prefix, model tags and alias (version tags: `models search`)."""
    tags = parse_pairs(tag, option="--tag")
    page = to_json(get_state(ctx).api().registry.list_models(prefix=prefix, tags=tags or None, alias=alias,
                                                             offset=offset, limit=limit))
    if json_:
        print_json(page)
    else:
        print_table(models_table(page))


@models_app.command("search")
def search(
    ctx: typer.Context,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Only models whose name starts with this.")] = None,
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", "-t", metavar="KEY=VALUE",
        help="Only versions with this version tag (register --tag; repeat: all must match).")] = None,
    alias: Annotated[str | None, typer.Option("--alias", "-a", help="Only the version this alias points at.")
                     ] = None,
    flavor: Annotated[str | None, typer.Option("--flavor", "-f", help="Only versions built by this flavor.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Page size.")] = 100,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many versions.")] = 0,
    json_: JsonOption = False,
) -> None:
    """Find versions across models by name prefix, version tags, alias and flavor, newest first."""
    tags = parse_pairs(tag, option="--tag")
    page = to_json(get_state(ctx).api().registry.search(prefix=prefix, tags=tags or None, alias=alias, flavor=flavor,
                                                        offset=offset, limit=limit))
    if json_:
        print_json(page)
    else:
        print_table(versions_table(page, title="search", with_model=True))


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
    registry = get_state(ctx).api().registry
    if ":" in ref or "@" in ref:
        version = to_json(registry.get_version(ref))
        if json_:
            print_json(version)
        else:
            print_table(version_table(version))
        return
    model = to_json(registry.get_model(parsed.name))
    versions = to_json(registry.list_versions(parsed.name, offset=offset, limit=limit))
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
    result = to_json(get_state(ctx).api().registry.set_alias(name, version, alias))
    if json_:
        print_json(result)
    else:
        print_table(version_table(result))


def register(app: typer.Typer) -> None:
    """Add the ``models`` group to the root app."""
    app.add_typer(models_app)
