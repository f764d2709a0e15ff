"""``/api/v1/deployments``: deploy a version under a name, list, inspect, take down.

A deploy returns once the deployment answers predictions (``Platform.deploy``), so the handlers are synchronous
and run in Litestar's thread pool; answers are :mod:`modelyard.serialize` dicts. Each handler calls one checking
Platform verb as the request's principal, which makes the request's one authorisation decision
(``decided_by: platform``); what it adds (the serving processes, the runtime's status) it reads unchecked.
"""

from __future__ import annotations

import functools
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromPath
from modelyard.serialize import serving_json

from modelyard_plugins.server.auth import principal_of
from modelyard_plugins.server.models import read_limited
from modelyard_plugins.server.responses import (
    DeploymentAnswer,
    DeploymentList,
    DeploymentOut,
    DeploymentStatusOut,
    wire,
)
from modelyard_plugins.server.schemas import CreateDeployment, decode_body, documented_body

_CREATE = msgspec.json.Decoder(CreateDeployment)
_READ = {"action": "deployments:read", "resource": "deployments/{name}", "decided_by": "platform"}


class DeploymentsController(Controller):
    """Deployment endpoints."""

    path = "/api/v1/deployments"
    tags = ["deployments"]

    @get("", opt={"action": "deployments:read", "resource": "deployments", "decided_by": "platform"},
         sync_to_thread=True, summary="List deployments")
    def list_deployments(self, request: Request) -> DeploymentList:
        """Every deployment record: ``{"items": [...]}``."""
        deployments = request.app.state.platform.deployments(principal=principal_of(request))
        return DeploymentList(items=[wire(DeploymentOut, d) for d in deployments])

    @post("", opt={"action": "deployments:create", "resource": "deployments/{name}", "decided_by": "platform"},
          status_code=201,
          summary="Deploy a model version", operation_class=documented_body(CreateDeployment))
    async def create(self, request: Request) -> Response[DeploymentAnswer]:
        """Deploy ``model`` (``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``) under ``name`` (default: the model's
        name), or move an existing deployment to it; 201 once it answers predictions on the process that took
        the call (``served_by``). The other serving processes converge within ``[server]
        reconcile_interval_s``; ``processes`` shows where each stands. The body is decoded strictly (no
        ``"2"`` for an integer) and depth-checked before parsing."""
        settings = request.app.state.server_settings
        data = decode_body(await read_limited(request, settings.max_body_bytes), _CREATE, what="deployment body")
        batching = msgspec.structs.asdict(data.batching) if data.batching is not None else None
        platform = request.app.state.platform
        call = functools.partial(platform.deploy, data.model, name=data.name, batching=batching,
                                 replicas=data.replicas, options=data.options, principal=principal_of(request))
        deployment = await anyio.to_thread.run_sync(call)
        return Response(_with_processes(platform, deployment), status_code=201,
                        headers={"Location": f"{self.path}/{deployment.name}"})

    @get("/{name:str}", opt=_READ, sync_to_thread=True, summary="Get a deployment")
    def get_deployment(self, request: Request, name: FromPath[str]) -> DeploymentAnswer:
        """One deployment record, with ``processes``: per live serving process, the version and generation it
        serves, its state and whether it converged to the record."""
        platform = request.app.state.platform
        return _with_processes(platform, platform.get_deployment(name, principal=principal_of(request)))

    @delete("/{name:str}", opt={"action": "deployments:delete", "resource": "deployments/{name}",
                                "decided_by": "platform"}, sync_to_thread=True, summary="Take a deployment down")
    def undeploy(self, request: Request, name: FromPath[str]) -> None:
        """Delete the deployment's record and take it down here (elsewhere within the poll interval); 204."""
        request.app.state.platform.undeploy(name, principal=principal_of(request))

    @get("/{name:str}/status", opt=_READ, sync_to_thread=True, summary="Deployment status")
    def status(self, request: Request, name: FromPath[str]) -> DeploymentStatusOut:
        """The record and its ``processes``, plus what this process's runtime reports now: readiness, queue
        depth, in-flight requests, loads."""
        platform = request.app.state.platform
        return _with_processes(platform, platform.get_deployment(name, principal=principal_of(request)),
                               DeploymentStatusOut, ready=platform.runtime.ready(name),
                               runtime_status=dict(platform.runtime.status().get(name) or {}))


def _with_processes(platform: Any, deployment: Any, schema: type[DeploymentAnswer] = DeploymentAnswer,
                    **extra: Any) -> Any:
    # The reconciler's reports, not Platform.serving: the verb that fetched the record decided the request.
    return wire(schema, deployment, served_by=platform.reconciler.process,
                processes=[serving_json(s, deployment) for s in platform.reconciler.reports(deployment.name)],
                **extra)
