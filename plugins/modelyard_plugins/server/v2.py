"""The Open Inference Protocol (KServe / Triton V2 REST) under ``/v2``, with the binary tensor data extension.

A V2 "model" is a deployment: ``/v2/models/churn`` is whatever version the ``churn`` deployment serves. The infer
route is the hottest code of the server, so it bypasses Litestar's body parsing: it reads the raw body, decodes it
with :mod:`modelyard.protocol.v2`, awaits ``Platform.apredict_full`` — the runtime looks the deployment up once and
checks the tensors once, against the signature of the version that runs them, and says which version answered —
and answers with the encoded bytes as they are. No registry I/O per request. Nothing on it logs per request. Its
OpenAPI description (the V2 request and response JSON) is attached once, at app creation, by
:func:`~modelyard_plugins.server.schemas.documented_body`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio.to_thread
import attrs
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import ClientException, HTTPException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import FromPath
from litestar.types import ASGIApp, Receive, Scope, Send
from modelyard import __version__
from modelyard.errors import InvalidInput, NotFound, Unavailable
from modelyard.names import check_name
from modelyard.protocol.v2 import HEADER_LENGTH_HEADER, decode_request, encode_response
from modelyard.types import ModelRef, ModelVersion

from modelyard_plugins.server.auth import principal_of
from modelyard_plugins.server.schemas import V2InferRequest, V2InferResponse, documented_body

# The V2 routes call no checking Platform verb (metadata and readiness read the runtime and, unchecked, the
# registry backend), so the server's middleware makes their one decision, on the path's deployment.
_PREDICT = {"action": "predict", "resource": "deployments/{name}", "decided_by": "platform"}
_READ = {"action": "deployments:read", "resource": "deployments/{name}"}
_HEADER_LENGTH = HEADER_LENGTH_HEADER.lower()
_INFER_DOC = documented_body(
    V2InferRequest, binary_extension=True, response=V2InferResponse,
    description="An Open Inference Protocol request: JSON, or a JSON header followed by binary tensor data "
                f"({HEADER_LENGTH_HEADER} gives the header's length in ASCII digits).")


class InferResponse:
    """The infer route's answer as a bare ASGI app: the encoded bytes and their headers, nothing else to do.

    Litestar's ``Response`` would be turned into an ``ASGIResponse`` per request (header normalisation, cookie
    and background handling) — a sizeable share of a small model's request time.
    """

    __slots__ = ("body", "headers")

    def __init__(self, body: bytes, headers: Mapping[str, str]) -> None:
        self.body = body
        self.headers = [(b"content-length", str(len(body)).encode())]
        self.headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


@attrs.frozen
class ServedVersion:
    """What the metadata routes show of a served version, read once per (model, version): versions are immutable."""

    version: ModelVersion


async def read_body(request: Request[Any, Any, Any]) -> bytes:
    """The request body, straight from ``receive``: Litestar's ``body()`` goes through an async generator per
    request. The app's body limit (``[server] max_body_mb``) is enforced the same way (413)."""
    limit = request.app.state.server_settings.max_body_bytes
    length = request.content_length
    if length is not None and length > limit:
        raise RequestEntityTooLarge
    receive = request.receive
    message = await receive()
    if message["type"] != "http.request":
        raise ClientException("the client disconnected before sending the body")
    body = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise RequestEntityTooLarge
        return body
    chunks, size = [body], len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientException("the client disconnected before sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _recorded(platform: Any, name: str) -> None:
    """NotFound when there is no deployment ``name``: read from the backend, unchecked (the route decided)."""
    await anyio.to_thread.run_sync(platform.registry_backend.get_deployment, check_name(name, field="name"))


def _not_served(name: str, version: str, served: int) -> NotFound:
    return NotFound(f"model {name!r} serves version {served}, not version {version!r}")


class V2Controller(Controller):
    """Open Inference Protocol endpoints: health, server and model metadata, readiness, inference."""

    path = "/v2"
    tags = ["v2"]

    def __init__(self, owner: Any) -> None:
        super().__init__(owner)
        # Versions are immutable, so what is derived from one never goes stale; keyed by (model, version).
        self._versions: dict[tuple[str, int], ServedVersion] = {}

    # ------------------------------------------------------------------------------------------- lookups
    @staticmethod
    async def _served(platform: Any, name: str) -> tuple[str, int]:
        """``(model, version)`` the deployment ``name`` serves now, as the runtime reports it (metadata and
        readiness routes; the infer route learns the version from the prediction itself)."""
        row = (await anyio.to_thread.run_sync(platform.runtime.status)).get(name)
        if row is not None:
            return row["model"], row["version"]
        await _recorded(platform, name)
        raise NotFound(f"deployment {name!r} is not being served")

    async def _version(self, platform: Any, model: str, number: int) -> ServedVersion:
        key = (model, number)
        served = self._versions.get(key)
        if served is None:
            # The backend, not the checked registry verb: the route's decision covers what the deployment serves.
            version = await anyio.to_thread.run_sync(platform.registry_backend.resolve, ModelRef(model, version=number))
            served = self._versions[key] = ServedVersion(version)
        return served

    # ------------------------------------------------------------------------------------------- health
    @get("/health/live", opt={"public": True}, summary="Server liveness")
    async def live(self) -> dict[str, bool]:
        """200 while the process answers at all."""
        return {"live": True}

    @get("/health/ready", opt={"public": True}, summary="Server readiness")
    async def ready(self, request: Request) -> Response[Any]:
        """200 when this process serves what the registry records (``[server] ready_requires = "all"``, the
        default) — deployments that failed here are named under ``failed`` and not waited for — or as soon as
        it runs (``"none"``); 503 naming the deployments still coming up. Answered from memory: no registry
        I/O and no worker thread, so a busy server still answers its probes."""
        platform = request.app.state.platform
        if request.app.state.server_settings.ready_requires == "none":
            return Response({"ready": True})
        reconciler = platform.reconciler
        if not reconciler.converged_once:
            raise Unavailable("restoring the recorded deployments")
        waiting, failed = reconciler.readiness()
        if waiting:
            raise Unavailable(f"not serving yet: {', '.join(waiting)}")
        return Response({"ready": True, "failed": failed} if failed else {"ready": True})

    @get("", opt={"action": "server:read", "resource": "server"}, summary="Server metadata")
    async def server_metadata(self) -> dict[str, Any]:
        """Name, version and the protocol extensions this server implements."""
        return {"name": "modelyard", "version": __version__, "extensions": ["binary_tensor_data"]}

    # ------------------------------------------------------------------------------------------- metadata
    async def _metadata(self, request: Request, name: str, version: str | None) -> dict[str, Any]:
        platform = request.app.state.platform
        model, number = await self._served(platform, name)
        if version is not None and version != str(number):
            raise _not_served(name, version, number)
        served = await self._version(platform, model, number)
        signature = served.version.signature
        return {"name": name, "versions": [str(number)], "platform": served.version.flavor,
                "inputs": [t.to_dict() for t in signature.inputs] if signature else [],
                "outputs": [t.to_dict() for t in signature.outputs] if signature else []}

    @get("/models/{name:str}", opt=_READ, summary="Model metadata")
    async def model_metadata(self, request: Request, name: FromPath[str]) -> dict[str, Any]:
        """The served version, its flavor (``platform``) and its input and output tensors."""
        return await self._metadata(request, name, None)

    @get("/models/{name:str}/versions/{version:str}", opt=_READ, summary="Model version metadata")
    async def model_version_metadata(self, request: Request, name: FromPath[str],
                                     version: FromPath[str]) -> dict[str, Any]:
        """As for the model; 404 unless ``version`` is the one served."""
        return await self._metadata(request, name, version)

    async def _model_ready(self, request: Request, name: str, version: str | None) -> dict[str, Any]:
        platform = request.app.state.platform
        if platform.runtime.ready(name):
            _, number = await self._served(platform, name)
            if version is not None and version != str(number):
                raise _not_served(name, version, number)
            return {"name": name, "ready": True}
        await _recorded(platform, name)
        raise Unavailable(f"deployment {name!r} is recorded but not serving")

    @get("/models/{name:str}/ready", opt=_READ, summary="Model readiness")
    async def model_ready(self, request: Request, name: FromPath[str]) -> dict[str, Any]:
        """200 when the deployment answers predictions, 503 when it is recorded but not up, else 404."""
        return await self._model_ready(request, name, None)

    @get("/models/{name:str}/versions/{version:str}/ready", opt=_READ, summary="Model version readiness")
    async def model_version_ready(self, request: Request, name: FromPath[str],
                                  version: FromPath[str]) -> dict[str, Any]:
        """As for the model; 404 unless ``version`` is the one served."""
        return await self._model_ready(request, name, version)

    # ------------------------------------------------------------------------------------------- inference
    async def _infer(self, request: Request, name: str, version: str | None) -> InferResponse:
        # No lookup and no input check here: the runtime does both once, for the version that runs the request.
        platform = request.app.state.platform
        headers = request.headers
        encoding = headers.get("content-encoding")
        if encoding is not None and encoding.lower() != "identity":
            raise HTTPException(status_code=415, detail=f"Content-Encoding {encoding!r} is not supported; send the "
                                                        "body uncompressed")
        try:
            body = await read_body(request)
        except RequestEntityTooLarge:
            if not platform.runtime.ready(name):  # an unknown deployment is the first thing wrong with it
                raise NotFound(f"deployment {name!r} is not being served") from None
            raise
        number = None
        if version is not None:
            if not (version.isascii() and version.isdigit() and len(version) < 19):
                raise NotFound(f"model {name!r} serves a version numbered in plain ASCII digits, not version "
                               f"{version!r}")
            number = int(version)
        decoded = decode_request(body, header_length=headers.get(_HEADER_LENGTH))
        # The version asked for is the runtime's precondition: checked before the model runs (404 otherwise).
        prediction = await platform.apredict_full(name, decoded.as_arrays(), principal=principal_of(request),
                                                  version=number)
        outputs = prediction.outputs
        requested = decoded.outputs
        if requested is not None:
            # The one check of the requested outputs: against what the version that answered produced.
            try:
                outputs = {o.name: outputs[o.name] for o in requested}
            except KeyError as exc:
                raise InvalidInput(f"requested output {exc.args[0]!r} is not an output of model {name!r}; its "
                                   f"outputs are: {', '.join(sorted(prediction.outputs))}", field="outputs",
                                   input=exc.args[0]) from None
        content, out_headers = encode_response(model_name=name, model_version=str(prediction.version),
                                               outputs=outputs, request_id=decoded.id,
                                               binary_outputs=decoded.binary_outputs())
        return InferResponse(content, out_headers)

    @post("/models/{name:str}/infer", opt=_PREDICT, status_code=200, summary="Inference", operation_class=_INFER_DOC,
          description="Open Inference Protocol request, JSON or with binary tensor data "
                      "(Inference-Header-Content-Length). Outputs come back as binary data when the request asks "
                      "(parameters.binary_data_output, or an output's parameters.binary_data).")
    async def infer(self, request: Request, name: FromPath[str]) -> ASGIApp:
        """Predict with the deployment ``name``."""
        return await self._infer(request, name, None)

    @post("/models/{name:str}/versions/{version:str}/infer", opt=_PREDICT, status_code=200,
          summary="Inference on a version", operation_class=_INFER_DOC)
    async def infer_version(self, request: Request, name: FromPath[str], version: FromPath[str]) -> ASGIApp:
        """As ``infer``; 404 unless ``version`` is the version the deployment serves."""
        return await self._infer(request, name, version)
