"""``/api/v1/deployments``: deploy a version under a name, list, inspect, take down.

A deploy returns once the deployment answers predictions (``Platform.deploy``), so the handlers are synchronous
and run in Litestar's thread pool; answers are :mod:`modelyard.serialize` dicts.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromPath, JSONBody
from modelyard.serialize import deployment_json

from modelyard_plugins.server.auth import principal_id
from modelyard_plugins.server.schemas import CreateDeployment


class DeploymentsController(Controller):
    """Deployment endpoints."""

    path = "/api/v1/deployments"
    tags = ["deployments"]

    @get("", opt={"action": "deployments:read", "resource": "deployments"}, sync_to_thread=True,
         summary="List deployments")
    def list_deployments(self, request: Request) -> dict[str, Any]:
        """Every deployment record: ``{"items": [...]}``."""
        return {"items": [deployment_json(d) for d in request.app.state.platform.deployments()]}

    @post("", opt={"action": "deployments:create", "resource": "deployments"}, sync_to_thread=True,
          status_code=201, summary="Deploy a model version")
    def create(self, request: Request, data: JSONBody[CreateDeployment]) -> Response[dict[str, Any]]:
        """Deploy ``model`` (``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``) under ``name`` (default: the model's
        name), or move an existing deployment to it; 201 once it answers predictions."""
        batching = msgspec.structs.asdict(data.batching) if data.batching is not None else None
        deployment = request.app.state.platform.deploy(data.model, name=data.name, batching=batching,
                                                       replicas=data.replicas, options=data.options,
                                                       actor=principal_id(request))
        return Response(deployment_json(deployment), status_code=201,
                        headers={"Location": f"{self.path}/{deployment.name}"})

    @get("/{name:str}", opt={"action": "deployments:read", "resource": "deployments/{name}"}, sync_to_thread=True,
         summary="Get a deployment")
    def get_deployment(self, request: Request, name: FromPath[str]) -> dict[str, Any]:
        """One deployment record."""
        return deployment_json(request.app.state.platform.get_deployment(name))

    @delete("/{name:str}", opt={"action": "deployments:delete", "resource": "deployments/{name}"},
            sync_to_thread=True, summary="Take a deployment down")
    def undeploy(self, request: Request, name: FromPath[str]) -> None:
        """Take the deployment down and delete its record; 204."""
        request.app.state.platform.undeploy(name, actor=principal_id(request))

    @get("/{name:str}/status", opt={"action": "deployments:read", "resource": "deployments/{name}"},
         sync_to_thread=True, summary="Deployment status")
    def status(self, request: Request, name: FromPath[str]) -> dict[str, Any]:
        """The record plus what the runtime reports now: readiness, queue depth, in-flight requests, loads."""
        platform = request.app.state.platform
        record = deployment_json(platform.get_deployment(name))
        return {**record, "ready": platform.runtime.ready(name),
                "runtime_status": dict(platform.runtime.status().get(name) or {})}
