"""``/api/v1/models`` and ``/api/v1/search``: register, list, look up, alias and tag model versions.

Handlers translate HTTP to ``platform.registry`` calls and answer with :mod:`modelyard.serialize` dicts, so the CLI
prints the same whether it runs embedded or against this server. Registry calls block (database, builds), so
the handlers are synchronous and Litestar runs them in its thread pool; the upload is the exception — it is
streamed on the event loop, then built in a worker thread.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import anyio.to_thread
import msgspec
import numpy as np
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.exceptions import ClientException, HTTPException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from modelyard.errors import InvalidInput
from modelyard.serialize import model_json, page_json, version_json
from modelyard.types import ModelRef, check_version_number

from modelyard_plugins.server.auth import principal_id
from modelyard_plugins.server.schemas import PatchTags, RegisterFromUri, SetAlias
from modelyard_plugins.server.uploads import receive_upload

_REGISTER_FIELDS = ("name", "flavor", "tags", "lineage", "alias", "description", "options", "sample_input",
                    "expected_output")
_REGISTER_FROM_URI = msgspec.json.Decoder(RegisterFromUri)
#: msgspec's ValidationError ends with the path of the offending value: "… - at `$.options`".
_ERROR_PATH = re.compile(r"at `\$\.([A-Za-z_][A-Za-z0-9_]*)")
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
    try:
        value = msgspec.json.decode(raw)
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

    @get("", opt={"action": "models:read", "resource": "models"}, sync_to_thread=True, summary="List models")
    def list_models(self, request: Request, prefix: FromQuery[str | None] = None, tag: TagQuery = None,
                    alias: FromQuery[str | None] = None, offset: FromQuery[int] = 0,
                    limit: FromQuery[int] = 100) -> dict[str, Any]:
        """Models by name, filtered by name prefix, tags (``tag=k:v``, repeatable) and alias."""
        page = request.app.state.platform.registry.list_models(prefix=prefix, tags=parse_tag_filters(tag),
                                                               alias=alias, offset=offset, limit=limit)
        return page_json(page, model_json)

    # No Litestar body limit here: the upload limit ([server] max_upload_mb) is enforced while streaming, and a
    # JSON body is held to the ordinary body limit.
    @post("", opt={"action": "models:register", "resource": "models"}, status_code=201, request_max_body_size=None,
          summary="Register a model version", description=_REGISTER_DESCRIPTION)
    async def register(self, request: Request) -> Response[dict[str, Any]]:
        """Build and record the next version of a model; 201 with the version."""
        platform = request.app.state.platform
        settings = request.app.state.server_settings
        media_type, _ = request.content_type
        actor = principal_id(request)
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
                    expected_output=_json_field(fields, "expected_output"), actor=actor)
                version = await anyio.to_thread.run_sync(call)
            finally:
                upload.cleanup()
        elif media_type == "application/json":
            raw = await read_limited(request, settings.max_body_bytes)
            try:
                body = _REGISTER_FROM_URI.decode(raw)
            except msgspec.ValidationError as exc:
                path = _ERROR_PATH.search(str(exc))
                raise InvalidInput(f"register body: {exc}", field=path[1] if path else None) from None
            except msgspec.DecodeError as exc:
                raise ClientException(f"register body is not valid JSON: {exc}") from None
            if not request.app.state.dev and _is_local(body.uri):
                # A server-side path would let any caller with register rights read the server's files.
                raise InvalidInput("registering from a path on the server is allowed in dev mode only; upload the "
                                   "file (multipart) or give a remote URI (s3://, https://, …)", field="uri")
            call = functools.partial(_register, platform, body.name, body.uri, flavor=body.flavor,
                                     tags=body.tags, lineage=body.lineage, alias=body.alias,
                                     description=body.description, options=body.options,
                                     sample_input=body.sample_input, expected_output=body.expected_output,
                                     actor=actor)
            version = await anyio.to_thread.run_sync(call)
        else:
            raise HTTPException(status_code=415, detail=f"expected multipart/form-data (an upload) or "
                                                        f"application/json (a URI), got {media_type or 'nothing'!r}")
        return Response(version_json(version), status_code=201,
                        headers={"Location": f"/api/v1/models/{version.model}/versions/{version.number}"})

    @get("/{name:str}", opt={"action": "models:read", "resource": "models/{name}"}, sync_to_thread=True,
         summary="Get a model")
    def get_model(self, request: Request, name: FromPath[str]) -> dict[str, Any]:
        """One model with its tags and aliases."""
        return model_json(request.app.state.platform.registry.get_model(name))

    @get("/{name:str}/versions", opt={"action": "models:read", "resource": "models/{name}"}, sync_to_thread=True,
         summary="List a model's versions")
    def list_versions(self, request: Request, name: FromPath[str], offset: FromQuery[int] = 0,
                      limit: FromQuery[int] = 100) -> dict[str, Any]:
        """Versions of a model, newest first."""
        page = request.app.state.platform.registry.list_versions(name, offset=offset, limit=limit)
        return page_json(page, version_json)

    @get("/{name:str}/versions/{version:str}", opt={"action": "models:read", "resource": "models/{name}"},
         sync_to_thread=True, summary="Get a version")
    def get_version(self, request: Request, name: FromPath[str], version: FromPath[str]) -> dict[str, Any]:
        """One version (``latest`` is the newest)."""
        ref = ModelRef(name) if version == "latest" else ModelRef(name, version=check_version_number(version))
        return version_json(request.app.state.platform.registry.get_version(ref))

    @get("/{name:str}/aliases/{alias:str}", opt={"action": "models:read", "resource": "models/{name}"},
         sync_to_thread=True, summary="Resolve an alias")
    def get_alias(self, request: Request, name: FromPath[str], alias: FromPath[str]) -> dict[str, Any]:
        """The version an alias points at."""
        return version_json(request.app.state.platform.registry.get_version(ModelRef(name, alias=alias)))

    @put("/{name:str}/aliases/{alias:str}", opt={"action": "models:alias", "resource": "models/{name}"},
         sync_to_thread=True, summary="Point an alias at a version")
    def set_alias(self, request: Request, name: FromPath[str], alias: FromPath[str],
                  data: JSONBody[SetAlias]) -> dict[str, Any]:
        """Create or move an alias; the version it now points at."""
        version = request.app.state.platform.registry.set_alias(name, version=data.version, alias=alias,
                                                                actor=principal_id(request))
        return version_json(version)

    @delete("/{name:str}/aliases/{alias:str}", opt={"action": "models:alias", "resource": "models/{name}"},
            sync_to_thread=True, summary="Remove an alias")
    def delete_alias(self, request: Request, name: FromPath[str], alias: FromPath[str]) -> None:
        """Remove an alias; 204."""
        request.app.state.platform.registry.delete_alias(name, alias, actor=principal_id(request))

    @patch("/{name:str}/tags", opt={"action": "models:tag", "resource": "models/{name}"}, sync_to_thread=True,
           summary="Set and remove tags")
    def patch_tags(self, request: Request, name: FromPath[str], data: JSONBody[PatchTags]) -> dict[str, Any]:
        """Set ``tags`` and remove ``remove`` on the model, or on one version with ``version``; the updated
        model (or version)."""
        registry = request.app.state.platform.registry
        registry.set_tags(name, data.tags, version=data.version, remove=data.remove, actor=principal_id(request))
        if data.version is not None:
            return version_json(registry.get_version(ModelRef(name, version=data.version)))
        return model_json(registry.get_model(name))


class SearchController(Controller):
    """Search versions across models."""

    path = "/api/v1/search"
    tags = ["models"]

    @get("", opt={"action": "models:read", "resource": "models"}, sync_to_thread=True, summary="Search versions")
    def search(self, request: Request, prefix: FromQuery[str | None] = None, tag: TagQuery = None,
               alias: FromQuery[str | None] = None, flavor: FromQuery[str | None] = None, offset: FromQuery[int] = 0,
               limit: FromQuery[int] = 100) -> dict[str, Any]:
        """Versions by model-name prefix, version tags (``tag=k:v``), alias and flavor, newest first."""
        page = request.app.state.platform.registry.search(prefix=prefix, tags=parse_tag_filters(tag), alias=alias,
                                                          flavor=flavor, offset=offset, limit=limit)
        return page_json(page, version_json)
