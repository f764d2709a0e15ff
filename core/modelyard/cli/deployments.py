"""``modelyard deploy``, ``undeploy``, ``deployments`` and ``predict``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import structlog
import typer

from modelyard.cli.app import get_state
from modelyard.cli.output import deployment_table, deployments_table, print_json, print_line, print_table
from modelyard.cli.parsing import jsonable, read_input_text, to_named_inputs
from modelyard.converter import to_json
from modelyard.types import ModelRef

if TYPE_CHECKING:
    from modelyard.api import PlatformAPI
    from modelyard.platform import Platform

log = structlog.get_logger(__name__)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def deploy(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="NAME[:VERSION|@ALIAS]",
                                       help="What to deploy; a bare NAME means @production if set, else the newest.")],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Deployment name (default: the model name).")
                    ] = None,
    max_batch_size: Annotated[int | None, typer.Option("--max-batch-size", min=1,
                                                       help="Turn on dynamic batching: rows per call.")] = None,
    max_wait_ms: Annotated[float | None, typer.Option("--max-wait-ms", min=0,
                                                      help="Dynamic batching: longest wait to fill a batch.")] = None,
    replicas: Annotated[int, typer.Option("--replicas", "-r", min=1, help="Replicas (runtimes that scale).")] = 1,
    json_: JsonOption = False,
) -> None:
    """Deploy a model version (or move an existing deployment to it)."""
    batching = None
    if max_batch_size is not None or max_wait_ms is not None:
        batching = {"max_batch_size": 32 if max_batch_size is None else max_batch_size,
                    "max_wait_ms": 2.0 if max_wait_ms is None else max_wait_ms}
    state = get_state(ctx)
    result = to_json(state.api().deploy(ref, name=name, batching=batching, replicas=replicas))
    if json_:
        print_json(result)
        return
    print_table(deployment_table(result))
    if not state.server:
        # In embedded mode this process ends now; say where the deployment will actually serve.
        typer.echo("note: recorded in the local registry; it serves under `modelyard serve`, and "
                   "`modelyard predict` brings it up for one call", err=True)


def undeploy(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Deployment name.")],
    json_: JsonOption = False,
) -> None:
    """Take a deployment down and delete its record."""
    get_state(ctx).api().undeploy(name)
    if json_:
        print_json({"name": name, "undeployed": True})
    else:
        print_line(f"undeployed {name}")


def deployments(ctx: typer.Context, json_: JsonOption = False) -> None:
    """List deployments."""
    items = [to_json(d) for d in get_state(ctx).api().deployments()]
    if json_:
        print_json({"items": items})
    else:
        print_table(deployments_table(items))


def predict(
    ctx: typer.Context,
    deployment: Annotated[str, typer.Argument(help="Deployment name.")],
    input_: Annotated[str, typer.Option(
        "--input", "-i", metavar="JSON|@file.json|@file.npy",
        help='Inputs: {"input_name": [[...]]}, or a bare list when the model has one input; @file reads a '
             ".json, .npy (the single input) or .npz file.")],
    json_: JsonOption = False,
) -> None:
    """Predict with a deployment; prints the outputs as JSON lists."""
    value, source = read_input_text(input_)
    state = get_state(ctx)
    api = state.api()
    inputs = to_named_inputs(value, _input_specs(api, deployment), source=source)
    if not state.server:
        _serve_here(state.open_platform(), deployment)
    outputs = jsonable(api.predict(deployment, inputs))
    if json_:
        print_json(outputs)
    else:
        # One compact line: matrices stay readable, and the line is still JSON for a pipe.
        import json

        typer.echo(json.dumps(outputs))


def _input_specs(api: PlatformAPI, deployment: str) -> list[dict[str, Any]]:
    """The input specs (``{"name", "datatype", "shape"}``) of the version ``deployment`` serves."""
    record = api.get_deployment(deployment)
    version = api.registry.get_version(ModelRef(record.model, version=record.version))
    return [to_json(t) for t in version.signature.inputs] if version.signature else []


def _serve_here(platform: Platform, deployment: str) -> None:
    """Bring ``deployment`` up in this process's runtime unless it serves already.

    A deployment recorded by an earlier ``modelyard deploy`` lives only as a record until something serves it;
    a local ``predict`` serves that one deployment for its one call (as ``restore_deployments`` does for all of
    them when a server starts).
    """
    runtime = platform.runtime
    if runtime.ready(deployment):
        return
    record = platform.get_deployment(deployment)
    version = platform.registry.get_version(ModelRef(record.model, version=record.version))
    runtime.deploy(record, platform.bundle_source(version))
    log.debug("deployment brought up for this invocation", deployment=deployment)


def register(app: typer.Typer) -> None:
    """Add the deployment commands to the root app."""
    app.command("deploy")(deploy)
    app.command("undeploy")(undeploy)
    app.command("deployments")(deployments)
    app.command("predict")(predict)
