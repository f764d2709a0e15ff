"""The Open Inference Protocol (KServe / Triton V2 REST) under ``/v2``, with the binary tensor data extension.

A V2 "model" is a deployment: ``/v2/models/churn`` is whatever version the ``churn`` deployment serves. The infer
route is the hottest code of the server, so it bypasses Litestar's body parsing: it reads the raw body, decodes it
with :mod:`modelyard.protocol.v2`, checks the tensors against the served version's signature (cached per
immutable version, so no registry I/O per request), awaits ``Platform.apredict`` and answers with the encoded
bytes as they are. Nothing on it logs per request.
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
from modelyard.bundles import InputAdapter
from modelyard.errors import InvalidInput, NotFound, Unavailable
from modelyard.protocol.v2 import HEADER_LENGTH_HEADER, decode_request, encode_response
from modelyard.types import ModelRef, ModelVersion

from modelyard_plugins.server.auth import principal_id

_PREDICT = {"action": "predict", "resource": "deployments/{name}"}
_READ = {"action": "deployments:read", "resource": "deployments/{name}"}
_HEADER_LENGTH = HEADER_LENGTH_HEADER.lower()


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
    """What the infer route needs to know about a served version, computed once per (model, version)."""

    version: ModelVersion
    adapter: InputAdapter | None  # None when the version has no input signature: the model checks alone
    outputs: frozenset[str]


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
        """``(model, version)`` the deployment ``name`` serves now, without registry I/O when the runtime knows."""
        info = getattr(platform.runtime, "info", None)
        if info is not None:
            return info(name)
        dep = await anyio.to_thread.run_sync(platform.get_deployment, name)
        if not platform.runtime.ready(name):
            raise NotFound(f"deployment {name!r} is not being served")
        return dep.model, dep.version

    async def _version(self, platform: Any, model: str, number: int) -> ServedVersion:
        key = (model, number)
        served = self._versions.get(key)
        if served is None:
            version = await anyio.to_thread.run_sync(platform.registry.get_version, ModelRef(model, version=number))
            signature = version.signature
            adapter = InputAdapter(signature.inputs) if signature is not None and signature.inputs else None
            outputs = frozenset(t.name for t in signature.outputs) if signature is not None else frozenset()
            served = self._versions[key] = ServedVersion(version, adapter, outputs)
        return served

    # ------------------------------------------------------------------------------------------- health
    @get("/health/live", opt={"public": True}, summary="Server liveness")
    async def live(self) -> dict[str, bool]:
        """200 while the process answers at all."""
        return {"live": True}

    @get("/health/ready", opt={"public": True}, summary="Server readiness")
    async def ready(self, request: Request) -> Response[Any]:
        """200 when every deployment recorded as ready is served; 503 naming the ones that are not."""
        platform = request.app.state.platform
        deployments = await anyio.to_thread.run_sync(platform.deployments)
        waiting = [d.name for d in deployments if d.state == "ready" and not platform.runtime.ready(d.name)]
        if waiting:
            raise Unavailable(f"not serving yet: {', '.join(sorted(waiting))}")
        return Response({"ready": True})

    @get("", summary="Server metadata")
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
        await anyio.to_thread.run_sync(platform.get_deployment, name)  # NotFound when there is no such deployment
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
        platform = request.app.state.platform
        model, number = await self._served(platform, name)
        if version is not None and version != str(number):
            raise _not_served(name, version, number)
        headers = request.headers
        encoding = headers.get("content-encoding")
        if encoding is not None and encoding.lower() != "identity":
            raise HTTPException(status_code=415, detail=f"Content-Encoding {encoding!r} is not supported; send the "
                                                        "body uncompressed")
        body = await read_body(request)
        decoded = decode_request(body, header_length=headers.get(_HEADER_LENGTH))
        served = self._versions.get((model, number)) or await self._version(platform, model, number)
        inputs = decoded.as_arrays()
        if served.adapter is not None:
            inputs = served.adapter(inputs)
        requested = decoded.outputs
        if requested is not None and served.outputs:
            for out in requested:
                if out.name not in served.outputs:
                    raise InvalidInput(f"requested output {out.name!r} is not an output of model {name!r}; "
                                       f"its outputs are: {', '.join(sorted(served.outputs))}", field="outputs",
                                       input=out.name)
        outputs = await platform.apredict(name, inputs, principal=principal_id(request))
        if requested is not None:
            try:
                outputs = {o.name: outputs[o.name] for o in requested}
            except KeyError as exc:
                raise InvalidInput(f"requested output {exc.args[0]!r} is not an output of model {name!r}",
                                   field="outputs", input=exc.args[0]) from None
        content, out_headers = encode_response(model_name=name, model_version=str(number), outputs=outputs,
                                               request_id=decoded.id, binary_outputs=decoded.binary_outputs())
        return InferResponse(content, out_headers)

    @post("/models/{name:str}/infer", opt=_PREDICT, status_code=200, summary="Inference",
          description="Open Inference Protocol request, JSON or with binary tensor data "
                      "(Inference-Header-Content-Length). Outputs come back as binary data when the request asks "
                      "(parameters.binary_data_output, or an output's parameters.binary_data).")
    async def infer(self, request: Request, name: FromPath[str]) -> ASGIApp:
        """Predict with the deployment ``name``."""
        return await self._infer(request, name, None)

    @post("/models/{name:str}/versions/{version:str}/infer", opt=_PREDICT, status_code=200,
          summary="Inference on a version")
    async def infer_version(self, request: Request, name: FromPath[str], version: FromPath[str]) -> ASGIApp:
        """As ``infer``; 404 unless ``version`` is the version the deployment serves."""
        return await self._infer(request, name, version)
