"""HTTP request bodies of ``/api/v1`` and ``/v2`` as msgspec structs — the transport's schemas, not the domain types
(STYLE 14) — and how the server reads and documents them.

Bodies the handlers read themselves are decoded with :func:`decode_body`: strictly (no coercion: ``"1"`` is not
the integer 1), with unknown fields refused, and bounded before any parser recurses into them (at most
:data:`~modelyard.protocol.v2.MAX_JSON_DEPTH` levels of arrays and objects). A body that is not JSON, nests
deeper or has an unknown field is a 400; a field of the wrong type is a 422 naming it. Their OpenAPI description
comes from the same structs through :func:`documented_body` (the V2 infer body is read by the codec; its structs
here only document it). The values' *meaning* (names, tags, version numbers) is checked by the Platform, which
answers 422.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request
from litestar.exceptions import ClientException, ValidationException
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, RequestBody
from modelyard.datatypes import DATATYPES
from modelyard.errors import InvalidInput
from modelyard.protocol.v2 import HEADER_LENGTH_HEADER, MAX_DIMS, MAX_JSON_DEPTH, json_too_deep

#: msgspec's ValidationError ends with the path of the offending value: "… - at `$.options.x`".
_ERROR_PATH = re.compile(r"at `\$\.([^`]+)`")
_INDEX = re.compile(r"\[[^\]]*\]")
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `([^`]*)`")


def _bounded(value: Any, field: str) -> None:
    """Refuse a decoded JSON value nested more than MAX_JSON_DEPTH levels (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"{field} nests arrays and objects more than {MAX_JSON_DEPTH} levels deep")
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))


class RegisterFromUri(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /api/v1/models`` with a JSON body: register a model from a URI the server can read.

    ``options`` are the flavor's build options (e.g. torch ``input_spec``); ``sample_input`` and
    ``expected_output`` map tensor names to arrays written as nested lists, for the validation run.
    """

    name: str
    flavor: str
    uri: str
    tags: dict[str, str] = {}
    lineage: dict[str, Any] = {}
    alias: str | None = None
    description: str = ""
    options: dict[str, Any] = {}
    sample_input: dict[str, Any] | None = None
    expected_output: dict[str, Any] | None = None


class SetAlias(msgspec.Struct, forbid_unknown_fields=True):
    """``PUT /api/v1/models/{name}/aliases/{alias}``: the version the alias points at."""

    version: int


class PatchTags(msgspec.Struct, forbid_unknown_fields=True):
    """``PATCH /api/v1/models/{name}/tags``: tags to set and keys to remove, on the model or one version."""

    tags: dict[str, str] = {}
    remove: list[str] = []
    version: int | None = None


class Batching(msgspec.Struct, forbid_unknown_fields=True):
    """Dynamic batching settings of a deployment."""

    max_batch_size: int = 32
    max_wait_ms: float = 2.0
    wait_when_idle: bool = False


class CreateDeployment(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /api/v1/deployments``: deploy ``model`` (``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``)."""

    model: str
    name: str | None = None
    batching: Batching | None = None
    replicas: int = 1
    options: dict[str, Any] = {}

    def __post_init__(self) -> None:
        # Litestar parses this body itself; the bound on nesting is checked on what it parsed.
        _bounded(self.options, "options")


# ------------------------------------------------------------------------------------------- the V2 documents
# These describe the Open Inference Protocol's JSON for the OpenAPI document only: the infer route reads its body
# with modelyard.protocol.v2, which is faster and more lenient where Triton is (NaN literals, nested data).

Datatype = Literal[DATATYPES]  # type: ignore[valid-type]
Dim = Annotated[int, msgspec.Meta(ge=0)]


class V2TensorParameters(msgspec.Struct):
    """A tensor's parameters: ``binary_data_size`` when its data follows the JSON header as raw bytes."""

    binary_data_size: Annotated[int, msgspec.Meta(ge=0)] | None = None


class V2InferTensor(msgspec.Struct):
    """An input tensor: ``data`` flat in row-major order (or nested lists), or ``parameters.binary_data_size``."""

    name: str
    shape: Annotated[list[Dim], msgspec.Meta(max_length=MAX_DIMS)]
    datatype: Datatype
    parameters: V2TensorParameters | None = None
    data: Annotated[Any, msgspec.Meta(description="the elements: numbers, booleans or strings (BYTES)")] = None


class V2OutputParameters(msgspec.Struct):
    """A requested output's parameters."""

    binary_data: bool | None = None


class V2RequestedOutput(msgspec.Struct):
    """An output the request asks for, as JSON or (``binary_data``) as raw bytes."""

    name: str
    parameters: V2OutputParameters | None = None


class V2InferRequestParameters(msgspec.Struct):
    """Request parameters: ``binary_data_output`` asks for every output as raw bytes."""

    binary_data_output: bool | None = None


class V2InferRequest(msgspec.Struct):
    """An Open Inference Protocol inference request (KServe / Triton V2)."""

    inputs: list[V2InferTensor]
    id: str | None = None
    parameters: V2InferRequestParameters | None = None
    outputs: list[V2RequestedOutput] | None = None


class V2OutputTensor(msgspec.Struct):
    """An output tensor, as JSON ``data`` or with ``parameters.binary_data_size``."""

    name: str
    shape: list[Dim]
    datatype: Datatype
    parameters: V2TensorParameters | None = None
    data: Annotated[Any, msgspec.Meta(description="the elements, flat in row-major order")] = None


class V2InferResponse(msgspec.Struct):
    """An Open Inference Protocol inference response."""

    model_name: str
    outputs: list[V2OutputTensor]
    model_version: str | None = None
    id: str | None = None


# ------------------------------------------------------------------------------------------- reading and documenting
def decode_body(raw: bytes, decoder: msgspec.json.Decoder, *, what: str) -> Any:
    """``raw`` decoded strictly by ``decoder``: 400 when it is not JSON, nests more than ``MAX_JSON_DEPTH`` levels
    (checked before parsing) or has an unknown field, :class:`InvalidInput` (422) naming a field of the wrong
    type (no coercion: ``"1"`` is not an integer)."""
    if json_too_deep(raw):
        raise ClientException(f"{what} nests arrays and objects more than {MAX_JSON_DEPTH} levels deep")
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        path = _ERROR_PATH.search(str(exc))  # "$.lineage.a", "$.tags[...]": the field is "lineage.a", "tags"
        field = _INDEX.sub("", path[1]) if path else None
        unknown = _UNKNOWN_FIELD.match(str(exc))
        if unknown:  # the body is not this route's: a 400, as Litestar answers for the bodies it reads
            key = f"{field}.{unknown[1]}" if field else unknown[1]
            raise ValidationException(f"{what}: {exc}", extra=[{"key": key, "message": str(exc)}]) from None
        raise InvalidInput(f"{what}: {exc}", field=field) from None
    except msgspec.DecodeError as exc:
        raise ClientException(f"{what} is not valid JSON: {exc}") from None


class BoundedJSONRequest(Request[Any, Any, Any]):
    """A Litestar request whose ``json()`` refuses (400) a body nested more than ``MAX_JSON_DEPTH`` levels
    *before* parsing it, for the routes whose ``data: JSONBody[...]`` Litestar parses itself. Give it to an app
    or a controller as ``request_class``; without it such a body reaches msgspec's parser, which stops at
    Python's recursion limit (a RecursionError, answered 400 by :mod:`~modelyard_plugins.server.problems`)."""

    async def json(self) -> Any:
        body = await self.body()  # read once: Litestar keeps it for super().json()
        if json_too_deep(body):
            raise ClientException(f"the request body nests arrays and objects more than {MAX_JSON_DEPTH} levels "
                                  "deep")
        return await super().json()


def json_schema(struct: Any) -> dict[str, Any]:
    """The JSON Schema of a msgspec type with every ``$ref`` inlined (the types here are not recursive)."""
    schema = msgspec.json.schema(struct)
    defs = schema.pop("$defs", {})

    def inline(value: Any) -> Any:
        if isinstance(value, dict):
            ref = value.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in value.items()}
        if isinstance(value, list):
            return [inline(v) for v in value]
        return value

    return inline(schema)


def documented_body(body: Any, *, description: str | None = None, binary_extension: bool = False,
                    response: Any = None, extra_content: dict[str, OpenAPIMediaType] | None = None
                    ) -> type[Operation]:
    """An OpenAPI ``operation_class`` for a route that reads its body itself (so Litestar, which documents only
    the ``data`` it parses, cannot): it describes ``body`` (a msgspec type) as the JSON request body, the other
    media types in ``extra_content`` and, given ``response``, the 200 answer's JSON. ``binary_extension`` adds
    the V2 binary tensor data extension's ``application/octet-stream`` form. Nothing of it runs per request."""
    content = {"application/json": OpenAPIMediaType(schema=json_schema(body)), **(extra_content or {})}  # type: ignore[arg-type]
    if binary_extension:
        content["application/octet-stream"] = OpenAPIMediaType(schema={  # type: ignore[arg-type]
            "type": "string", "format": "binary",
            "description": f"the JSON header (its length in the {HEADER_LENGTH_HEADER} header), then each binary "
                           "tensor's bytes in order"})
    request_body = RequestBody(content=content, required=True, description=description)
    answer = json_schema(response) if response is not None else None

    class DocumentedOperation(Operation):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.request_body = request_body
            if answer is not None:
                ok = (self.responses or {}).get("200")
                description = ok.description if isinstance(ok, OpenAPIResponse) else "OK"
                self.responses = {**(self.responses or {}), "200": OpenAPIResponse(
                    description=description, content={"application/json": OpenAPIMediaType(schema=answer)})}  # type: ignore[arg-type]

    DocumentedOperation.__qualname__ = DocumentedOperation.__name__ = f"{getattr(body, '__name__', 'Body')}Operation"
    return DocumentedOperation
