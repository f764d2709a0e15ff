"""``/api/v1/models`` and ``/api/v1/search``: register, list, look up, alias and tag model versions.

Handlers translate HTTP to ``platform.registry`` calls, made as the request's principal — each verb makes the
request's one authorisation decision (``decided_by: platform``, :mod:`modelyard_plugins.server.auth`) — and answer with :mod:`modelyard.serialize` dicts, so the CLI
prints the same whether it runs embedded or against this server. Registry calls block (database, builds), so
the handlers are synchronous and Litestar runs them in its thread pool; those that take a body are the exception —
they read it on the event loop (an upload streamed to disk, a JSON body decoded strictly and bounded in nesting by
:func:`~modelyard_plugins.server.schemas.decode_body`), then call the registry in a worker thread.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import anyio.to_thread
import msgspec
import numpy as np
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.exceptions import HTTPException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.spec import OpenAPIMediaType
from litestar.params import FromPath, FromQuery, QueryParameter
from modelyard.errors import InvalidInput
from modelyard.protocol.v2 import MAX_JSON_DEPTH, json_too_deep
from modelyard.types import ModelRef, check_version_number

from modelyard_plugins.server.auth import principal_of
from modelyard_plugins.server.responses import ModelOut, PageOut, VersionOut, wire
from modelyard_plugins.server.schemas import (
    PatchTags,
    RegisterFromUri,
    SetAlias,
    decode_body,
    documented_body,
)
from modelyard_plugins.server.uploads import receive_upload

_REGISTER_FIELDS = ("name", "flavor", "tags", "lineage", "alias", "description", "options", "sample_input",
                    "expected_output")
_REGISTER_FROM_URI = msgspec.json.Decoder(RegisterFromUri)
_SET_ALIAS = msgspec.json.Decoder(SetAlias)
_PATCH_TAGS = msgspec.json.Decoder(PatchTags)
_REGISTER_DESCRIPTION = (
    "multipart/form-data: a `file` part (the model; streamed to disk) plus the form fields `name`, `flavor`, "
    "`alias`, `description` (text) and `tags`, `lineage`, `options`, `sample_input`, `expected_output` (each a "
    "JSON object). Or a JSON body `{\"name\", \"flavor\", \"uri\", \"tags\", \"lineage\", \"alias\", "
    "\"description\", \"options\", \"sample_input\", \"expected_output\"}` to register from a URI the server "
    "can read. `options` are the flavor's build options (torch: `input_spec`, `input_names`, `output_names`, "
    "`module_factory`, `convert`; sklearn: `input_name`, `n_features`, `dtype`). `sample_input` and "
    "`expected_output` map tensor names to arrays written as nested lists (`{\"x\": [[0.1, 0.2]]}`): the build "
    "runs the model on the sample and compares the outputs named in `expected_output`. A field that is not a "
    "JSON object is a 422 naming it; a model that fails to build or validate is a 422 `build-error`.")
#: The reads of one model: ``models.registry``'s read verbs decide them (on ``models/<name>``).
_READ_ONE = {"action": "models:read", "resource": "models/{name}", "decided_by": "platform"}
#: ``?tag=k:v``, repeatable: the items must carry every tag given.
TagQuery = Annotated[list[str] | None, QueryParameter(description="KEY:VALUE, repeatable; all must match")]


def parse_tag_filters(values: Sequence[str] | None) -> dict[str, str] | None:
    """``["team:growth", "stage:prod"]`` → ``{"team": "growth", "stage": "prod"}``; None when none given."""
    if not values:
        return None
    tags = {}
    for value in values:
        key, sep, val = value.partition(":")
        if not sep or not key:
            raise InvalidInput(f"tag filter {value!r}: expected KEY:VALUE", field="tag")
        tags[key] = val
    return tags


async def read_limited(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes — for routes whose own limit is larger."""
    if (request.content_length or 0) > limit:
        raise RequestEntityTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _json_field(fields: dict[str, str], key: str) -> Any:
    raw = fields.get(key)
    if raw is None or raw == "":
        return None
    data = raw.encode()
    if json_too_deep(data):
        raise InvalidInput(f"form field {key!r} nests arrays and objects more than {MAX_JSON_DEPTH} levels deep",
                           field=key)
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError:
        raise InvalidInput(f"form field {key!r}: expected a JSON object", field=key) from None
    if not isinstance(value, dict):
        raise InvalidInput(f"form field {key!r}: expected a JSON object, got {type(value).__name__}", field=key)
    return value


def tensors_field(value: Mapping[str, Any] | None, field: str) -> dict[str, np.ndarray] | None:
    """``{"x": [[1, 2], [3, 4]]}`` → ``{"x": array}``: arrays of numbers, booleans or strings, else a 422 naming
    ``field.name`` (ragged rows, nulls and objects have no array form a model could take)."""
    if value is None:
        return None
    arrays = {}
    for name, data in value.items():
        try:
            array = np.asarray(data)
        except (ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidInput(f"{field} {name!r}: not an array (rows of unequal length?): {first}",
                               field=f"{field}.{name}") from None
        if array.dtype == object:
            raise InvalidInput(f"{field} {name!r}: expected an array of numbers, booleans or strings as nested "
                               "lists; it holds null or objects", field=f"{field}.{name}")
        arrays[name] = array
    return arrays


def _register(platform: Any, name: str, source: Any, *, sample_input: Mapping[str, Any] | None,
              expected_output: Mapping[str, Any] | None, **kwargs: Any) -> Any:
    # Runs in a worker thread: turning a large JSON sample into arrays must not hold up the event loop.
    return platform.registry.register(name, source, sample_input=tensors_field(sample_input, "sample_input"),
                                      expected_output=tensors_field(expected_output, "expected_output"), **kwargs)


def _uri_error(exc: InvalidInput) -> InvalidInput:
    """The registry names a source it cannot read ``source``; over HTTP that is the body's ``uri``."""
    if exc.field != "source":
        return exc
    return InvalidInput(exc.message, field="uri", **exc.extra)


def _multipart_schema() -> dict[str, Any]:
    text = {"type": "string"}
    obj = {"type": "string", "description": "a JSON object"}
    return {"type": "object", "required": ["file", "name", "flavor"], "properties": {
        "file": {"type": "string", "format": "binary"}, "name": text, "flavor": text, "alias": text,
        "description": text, "tags": obj, "lineage": obj, "options": obj, "sample_input": obj,
        "expected_output": obj}}


def _is_local(uri: str) -> bool:
    scheme, sep, _ = uri.partition("://")
    return not sep or scheme.lower() in ("file", "local")


def _required(fields: dict[str, str], key: str) -> str:
    value = fields.get(key)
    if not value:
        raise InvalidInput(f"form field {key!r} is required", field=key)
    return value


class ModelsController(Controller):
    """Model registry endpoints."""

    path = "/api/v1/models"
    tags = ["models"]

    @get("", opt={"action": "models:read", "resource": "models", "decided_by": "platform"}, sync_to_thread=True,
         summary="List models")
    def list_models(self, request: Request, prefix: FromQuery[str | None] = None, tag: TagQuery = None,
                    alias: FromQuery[str | None] = None, offset: FromQuery[int] = 0,
                    limit: FromQuery[int] = 100) -> PageOut[ModelOut]:
        """Models by name, filtered by name prefix, tags (``tag=k:v``, repeatable) and alias."""
        page = request.app.state.platform.registry.list_models(prefix=prefix, tags=parse_tag_filters(tag),
                                                               alias=alias, offset=offset, limit=limit,
                                                               principal=principal_of(request))
        return wire(PageOut[ModelOut], page)

    # No Litestar body limit here: the upload limit ([server] max_upload_mb) is enforced while streaming, and a
    # JSON body is held to the ordinary body limit.
    @post("", opt={"action": "models:register", "resource": "models/{name}", "decided_by": "platform"},
          status_code=201, request_max_body_size=None,
          summary="Register a model version", description=_REGISTER_DESCRIPTION,
          operation_class=documented_body(RegisterFromUri, extra_content={
              "multipart/form-data": OpenAPIMediaType(schema=_multipart_schema())}))  # type: ignore[arg-type]
    async def register(self, request: Request) -> Response[VersionOut]:
        """Build and record the next version of a model; 201 with the version."""
        platform = request.app.state.platform
        settings = request.app.state.server_settings
        media_type, _ = request.content_type
        principal = principal_of(request)
        if media_type == "multipart/form-data":
            upload = await receive_upload(request, tmp_dir=platform.tmp_dir, fields=_REGISTER_FIELDS,
                                          max_bytes=settings.max_upload_bytes)
            try:
                fields = upload.fields
                call = functools.partial(
                    _register, platform, _required(fields, "name"), upload.file,
                    flavor=_required(fields, "flavor"), tags=_json_field(fields, "tags"),
                    lineage=_json_field(fields, "lineage"), alias=fields.get("alias") or None,
                    description=fields.get("description", ""), options=_json_field(fields, "options"),
                    sample_input=_json_field(fields, "sample_input"),
                    expected_output=_json_field(fields, "expected_output"), principal=principal)
                version = await anyio.to_thread.run_sync(call)
            finally:
                upload.cleanup()
        elif media_type == "application/json":
            raw = await read_limited(request, settings.max_body_bytes)
            body = decode_body(raw, _REGISTER_FROM_URI, what="register body")
            if not request.app.state.dev and _is_local(body.uri):
                # A server-side path would let any caller with register rights read the server's files.
                raise InvalidInput("registering from a path on the server is allowed in dev mode only; upload the "
                                   "file (multipart) or give a remote URI (s3://, https://, …)", field="uri")
            call = functools.partial(_register, platform, body.name, body.uri, flavor=body.flavor,
                                     tags=body.tags, lineage=body.lineage, alias=body.alias,
                                     description=body.description, options=body.options,
                                     sample_input=body.sample_input, expected_output=body.expected_output,
                                     principal=principal)
            try:
                version = await anyio.to_thread.run_sync(call)
            except InvalidInput as exc:
                raise _uri_error(exc) from None
        else:
            raise HTTPException(status_code=415, detail=f"expected multipart/form-data (an upload) or "
                                                        f"application/json (a URI), got {media_type or 'nothing'!r}")
        return Response(wire(VersionOut, version), status_code=201,
                        headers={"Location": f"/api/v1/models/{version.model}/versions/{version.number}"})

    @get("/{name:str}", opt=_READ_ONE, sync_to_thread=True, summary="Get a model")
    def get_model(self, request: Request, name: FromPath[str]) -> ModelOut:
        """One model with its tags and aliases."""
        return wire(ModelOut, request.app.state.platform.registry.get_model(name, principal=principal_of(request)))

    @get("/{name:str}/versions", opt=_READ_ONE, sync_to_thread=True, summary="List a model's versions")
    def list_versions(self, request: Request, name: FromPath[str], offset: FromQuery[int] = 0,
                      limit: FromQuery[int] = 100) -> PageOut[VersionOut]:
        """Versions of a model, newest first."""
        page = request.app.state.platform.registry.list_versions(name, offset=offset, limit=limit,
                                                                 principal=principal_of(request))
        return wire(PageOut[VersionOut], page)

    @get("/{name:str}/versions/{version:str}", opt=_READ_ONE, sync_to_thread=True, summary="Get a version")
    def get_version(self, request: Request, name: FromPath[str], version: FromPath[str]) -> VersionOut:
        """One version (``latest`` is the newest)."""
        ref = ModelRef(name) if version == "latest" else ModelRef(name, version=check_version_number(version))
        return wire(VersionOut, request.app.state.platform.registry.get_version(ref, principal=principal_of(request)))

    @get("/{name:str}/aliases/{alias:str}", opt=_READ_ONE, sync_to_thread=True, summary="Resolve an alias")
    def get_alias(self, request: Request, name: FromPath[str], alias: FromPath[str]) -> VersionOut:
        """The version an alias points at."""
        return wire(VersionOut, request.app.state.platform.registry.get_version(ModelRef(name, alias=alias),
                                                                                principal=principal_of(request)))

    @put("/{name:str}/aliases/{alias:str}", opt={"action": "models:alias", "resource": "models/{name}/aliases/{alias}",
                                                 "decided_by": "platform"},
         summary="Point an alias at a version", operation_class=documented_body(SetAlias))
    async def set_alias(self, request: Request, name: FromPath[str], alias: FromPath[str]) -> VersionOut:
        """Create or move an alias (``{"version": 3}``); the version it now points at."""
        settings = request.app.state.server_settings
        data = decode_body(await read_limited(request, settings.max_body_bytes), _SET_ALIAS, what="alias body")
        call = functools.partial(request.app.state.platform.registry.set_alias, name, version=data.version,
                                 alias=alias, principal=principal_of(request))
        return wire(VersionOut, await anyio.to_thread.run_sync(call))

    @delete("/{name:str}/aliases/{alias:str}",
            opt={"action": "models:unalias", "resource": "models/{name}/aliases/{alias}", "decided_by": "platform"},
            sync_to_thread=True, summary="Remove an alias")
    def delete_alias(self, request: Request, name: FromPath[str], alias: FromPath[str]) -> None:
        """Remove an alias; 204."""
        request.app.state.platform.registry.delete_alias(name, alias, principal=principal_of(request))

    @patch("/{name:str}/tags", opt={"action": "models:tag", "resource": "models/{name}", "decided_by": "platform"},
           summary="Set and remove tags", operation_class=documented_body(PatchTags))
    async def patch_tags(self, request: Request, name: FromPath[str]) -> ModelOut | VersionOut:
        """Set ``tags`` and remove ``remove`` on the model, or on one version with ``version``; the updated
        model (or version)."""
        settings = request.app.state.server_settings
        data = decode_body(await read_limited(request, settings.max_body_bytes), _PATCH_TAGS, what="tags body")
        call = functools.partial(_patch_tags, request.app.state.platform.registry, name, data,
                                 principal_of(request))
        return await anyio.to_thread.run_sync(call)


def _patch_tags(registry: Any, name: str, data: PatchTags, principal: Any) -> ModelOut | VersionOut:
    # set_tags answers the updated model or version: reading it again would be a second decision.
    updated = registry.set_tags(name, data.tags, version=data.version, remove=data.remove, principal=principal)
    return wire(VersionOut, updated) if data.version is not None else wire(ModelOut, updated)


class SearchController(Controller):
    """Search versions across models."""

    path = "/api/v1/search"
    tags = ["models"]

    @get("", opt={"action": "models:read", "resource": "models", "decided_by": "platform"}, sync_to_thread=True,
         summary="Search versions")
    def search(self, request: Request, prefix: FromQuery[str | None] = None, tag: TagQuery = None,
               alias: FromQuery[str | None] = None, flavor: FromQuery[str | None] = None, offset: FromQuery[int] = 0,
               limit: FromQuery[int] = 100) -> PageOut[VersionOut]:
        """Versions by model-name prefix, version tags (``tag=k:v``), alias and flavor, newest first."""
        page = request.app.state.platform.registry.search(prefix=prefix, tags=parse_tag_filters(tag), alias=alias,
                                                          flavor=flavor, offset=offset, limit=limit,
                                                          principal=principal_of(request))
        return wire(PageOut[VersionOut], page)
