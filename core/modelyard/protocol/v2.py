"""Codec for the Open Inference Protocol v2 (KServe / Triton HTTP/REST tensors).

Spec: https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
Binary extension: https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md

Wire format in brief
--------------------
An inference request is a JSON object::

    {"id": "42",                                   # optional
     "parameters": {...},                          # optional
     "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32",
                 "data": [1, 2, 3, 4, 5, 6]}],     # flat row-major, or nested lists
     "outputs": [{"name": "y", "parameters": {"binary_data": true}}]}   # optional

and a response is ``{"model_name", "model_version", "id", "parameters", "outputs": [...]}``
with output tensors shaped like the inputs above.

Datatypes: BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64 and BYTES. In JSON, BOOL
elements are ``true``/``false``, integers are JSON integers, floats are JSON numbers (the
non-standard literals ``NaN``/``Infinity``/``-Infinity`` that Triton reads and writes are
accepted and produced), BYTES elements are strings (UTF-8). Here BYTES tensors are numpy
``object`` arrays holding ``bytes``.

With the *binary data extension* the body is the JSON header followed by raw tensor bytes;
the HTTP header ``Inference-Header-Content-Length`` gives the JSON header's size. A tensor
whose ``parameters.binary_data_size`` is set has no ``data``; its bytes follow, in tensor
order, as little-endian row-major values (BOOL is one byte per element, 0 or 1) or, for
BYTES, as one 4-byte little-endian length prefix plus the raw bytes per element. A request
asks for binary outputs with ``outputs[i].parameters.binary_data`` or, for all outputs, the
request parameter ``binary_data_output`` (see :meth:`InferRequest.binary_outputs`).

Decoding is lenient where Triton is (unknown fields are ignored, ``data`` may be nested in
any way as long as the element count matches the shape, a scalar ``data`` is accepted for
shape ``[]``) and strict everywhere else. Tensors decoded from binary data are zero-copy,
read-only views of the body (``arr.copy()`` where a model needs to write); tensors decoded
from JSON are fresh arrays.

Errors
------
Every failure raises :class:`CodecError`. Its ``status`` is the HTTP status a server should
answer with:

* **400** - the body cannot be read as V2 tensors: invalid JSON or UTF-8, JSON nested deeper
  than :data:`MAX_JSON_DEPTH` arrays and objects, a string holding a lone UTF-16 surrogate
  (``"\\ud800"``), a required field missing or of the wrong JSON type, an
  ``Inference-Header-Content-Length`` that is not plain ASCII digits or lies outside the
  body, binary data truncated or left over, or tensor data that disagrees with the tensor's
  own declaration (element or byte count vs shape, element type or range vs datatype - a
  JSON number beyond the datatype's range, such as ``1e400`` or ``1e39`` for FP32 or 256
  for UINT8, is refused, never rounded to infinity or wrapped - malformed BYTES framing,
  both or neither of ``data`` and ``binary_data_size``).
* **422** - the JSON has the right structure, but a value is not acceptable: an unknown
  datatype, a negative dimension, a shape of more than :data:`MAX_DIMS` dimensions or of
  more elements than an array can hold, a duplicated input or requested-output name.
* **500** - raised only by the encoders: the caller handed over an array the protocol
  cannot carry (e.g. a complex dtype, a BYTES element that is neither bytes nor str, or
  non-UTF-8 bytes to be sent as JSON). For a server that is its own bug.

:func:`decode_response` uses the same 400/422 classification; a response body that is a V2
error object (``{"error": "..."}``) raises with status 502.

Whatever the msgspec release raises while decoding (``DecodeError``, ``ValidationError`` or
any other of its errors, ``RecursionError``, ``OverflowError``, ``UnicodeError``,
``ValueError``), the decoders raise :class:`CodecError`: nothing else escapes them.

Only numpy and msgspec are imported at module level; the stdlib ``json`` module is imported
lazily, on the rare paths that need ``NaN``/``Infinity`` literals.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

import msgspec
import numpy as np

from modelyard.datatypes import DATATYPES, FLOAT_DATATYPES, datatypes_by_kind_size, numpy_dtypes

__all__ = [
    "DATATYPES",
    "HEADER_LENGTH_HEADER",
    "MAX_DIMS",
    "MAX_JSON_DEPTH",
    "CodecError",
    "InferInput",
    "InferRequest",
    "InferResponse",
    "RequestedOutput",
    "datatype_of",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "json_depth",
    "json_too_deep",
    "numpy_dtype",
]

#: Name of the HTTP header carrying the JSON header's byte length when binary data follows.
HEADER_LENGTH_HEADER = "Inference-Header-Content-Length"
#: The most dimensions a tensor may have (numpy's own limit).
MAX_DIMS = 64
#: The deepest nesting of JSON arrays and objects accepted in an inference header: deeper documents are refused
#: before any parser recurses into them (``data`` of a tensor nested row by row may thus nest 61 levels).
MAX_JSON_DEPTH = 64
# The most elements a shape may describe: numpy's limit on an array's bytes (2**63 - 1) for 8-byte elements.
_MAX_ELEMENTS = 2**60

# --------------------------------------------------------------------------------------------
# Datatypes
# --------------------------------------------------------------------------------------------

# The table is modelyard.datatypes' (DATATYPES is re-exported from there): little-endian on the
# wire; on little-endian hosts these are the native dtypes.
_DTYPES = numpy_dtypes()
_DATATYPE_LIST = ", ".join(DATATYPES)

_BY_KIND_SIZE = datatypes_by_kind_size()
_FLOAT_TYPES = FLOAT_DATATYPES
_NARROW_FLOATS = frozenset({"FP16", "FP32"})  # Python floats can overflow these

_ELEMENT_TYPES: dict[str, type] = {name: int for name in DATATYPES}
_ELEMENT_TYPES.update({"BOOL": bool, "FP16": float, "FP32": float, "FP64": float, "BYTES": str})
_EXPECTED: dict[str, str] = {
    name: {bool: "a JSON boolean", int: "a JSON integer", float: "a JSON number", str: "a JSON string"}[t]
    for name, t in _ELEMENT_TYPES.items()
}
_FLAT_TYPES: dict[str, Any] = {name: list[t] for name, t in _ELEMENT_TYPES.items()}  # type: ignore[valid-type]
_FLAT_DECODERS: dict[str, msgspec.json.Decoder] = {
    name: msgspec.json.Decoder(t) for name, t in _FLAT_TYPES.items()
}


def numpy_dtype(datatype: str) -> np.dtype:
    """The numpy dtype for a V2 datatype (``BYTES`` -> ``object``).

    Raises :class:`CodecError` (status 422) for an unknown datatype.
    """
    try:
        return _DTYPES[datatype]
    except (KeyError, TypeError):
        raise CodecError(
            f"unknown datatype {datatype!r}; expected one of {_DATATYPE_LIST}", status=422
        ) from None


def datatype_of(dtype: np.dtype | type | str) -> str:
    """The V2 datatype for a numpy dtype.

    bool, (u)int8..64 and float16/32/64 of either byte order map to their datatype; object,
    ``bytes_`` (``S``) and ``str_`` (``U``) dtypes map to ``BYTES``. Anything else raises
    :class:`CodecError` (status 500).
    """
    dt = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
    name = _BY_KIND_SIZE.get((dt.kind, dt.itemsize))
    if name is None:
        if dt.kind in ("O", "S", "U"):
            return "BYTES"
        raise CodecError(
            f"numpy dtype {dt} has no V2 datatype; supported: bool, (u)int8-64, float16/32/64, "
            "and object/bytes/str arrays for BYTES",
            status=500,
        )
    return name


# --------------------------------------------------------------------------------------------
# Public records
# --------------------------------------------------------------------------------------------


class CodecError(Exception):
    """A V2 payload could not be decoded or encoded.

    ``status`` is the HTTP status to answer with (see the module docstring), ``input`` the
    name of the tensor at fault (an input, an output, or a requested output; ``None`` when
    the fault is not in one named tensor), ``detail`` a human message naming it.
    """

    def __init__(self, detail: str, *, status: int = 400, input: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.input = input

    def __repr__(self) -> str:
        return f"CodecError({self.detail!r}, status={self.status}, input={self.input!r})"


class InferInput(msgspec.Struct, frozen=True, eq=False):
    """One decoded input tensor; ``data`` already has shape ``shape``."""

    name: str
    shape: tuple[int, ...]
    datatype: str
    data: np.ndarray
    #: The tensor's ``parameters`` as sent (including ``binary_data_size`` if it was binary).
    parameters: dict[str, Any] = {}


class RequestedOutput(msgspec.Struct, frozen=True):
    """An entry of the request's ``outputs``: ``binary_data`` is None when not specified."""

    name: str
    binary_data: bool | None = None
    parameters: dict[str, Any] = {}


class InferRequest(msgspec.Struct, frozen=True, eq=False):
    """A decoded inference request."""

    id: str | None
    inputs: list[InferInput]
    outputs: list[RequestedOutput] | None = None
    parameters: dict[str, Any] = {}

    def as_arrays(self) -> dict[str, np.ndarray]:
        """``{input name: array of the input's shape}``, in request order."""
        return {i.name: i.data for i in self.inputs}

    def binary_outputs(self, default: bool = False) -> bool | frozenset[str]:
        """What to pass as ``encode_response(binary_outputs=...)`` to honour the request.

        The request parameter ``binary_data_output`` (if set) overrides ``default`` (the
        server's preference); a requested output's own ``binary_data`` overrides both.
        Returns a bool when the request names no outputs, else the set of binary outputs.
        """
        flag = self.parameters.get("binary_data_output")
        if flag is not None:
            default = bool(flag)
        if self.outputs is None:
            return default
        return frozenset(
            o.name for o in self.outputs if (default if o.binary_data is None else o.binary_data)
        )


class InferResponse(msgspec.Struct, frozen=True, eq=False):
    """A decoded inference response; ``outputs`` arrays have their shapes."""

    model_name: str
    model_version: str | None
    id: str | None
    outputs: dict[str, np.ndarray]
    parameters: dict[str, Any] = {}


# --------------------------------------------------------------------------------------------
# JSON schemas for the fast path (msgspec validates while it parses; ``data`` stays raw)
# --------------------------------------------------------------------------------------------

_ABSENT = msgspec.Raw()
_NULL = msgspec.Raw(b"null")


class _Tensor(msgspec.Struct):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    # A msgspec.Raw when decoded by msgspec (fast path); the slow path stores the decoded
    # Python value (or None) here instead.
    data: msgspec.Raw = _ABSENT


class _Requested(msgspec.Struct):
    name: str
    parameters: dict[str, Any] | None = None


class _Request(msgspec.Struct):
    inputs: list[_Tensor]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[_Requested] | None = None


class _Response(msgspec.Struct):
    model_name: str
    outputs: list[_Tensor]
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None


_REQUEST_DECODER = msgspec.json.Decoder(_Request)
_RESPONSE_DECODER = msgspec.json.Decoder(_Response)
_GENERIC_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def _err(what: str, name: str, message: str, status: int = 400) -> CodecError:
    return CodecError(f"{what} {name!r}: {message}", status=status, input=name)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _split(body: Any, header_length: int | str | None) -> tuple[bytes, Any, int]:
    if type(body) is not bytes:
        body = bytes(body)
    if header_length is None:
        return body, body, len(body)
    if type(header_length) is str:
        # Plain ASCII decimal digits only: int() would also take a sign, spaces, underscores and other
        # Unicode digits ("+1_0", " 10 ", Arabic-Indic or full-width digits).
        if not (header_length.isascii() and header_length.isdecimal() and len(header_length) <= 20):
            raise CodecError(
                f"{HEADER_LENGTH_HEADER} must be a byte count in ASCII digits, got {_short(header_length)}"
            )
        hl = int(header_length)
    elif isinstance(header_length, int) and not isinstance(header_length, bool):
        hl = header_length
    else:
        raise CodecError(f"{HEADER_LENGTH_HEADER} must be an integer, got {_short(header_length)}")
    if hl < 0 or hl > len(body):
        raise CodecError(f"{HEADER_LENGTH_HEADER} {hl} is outside the body ({len(body)} bytes)")
    return body, (body if hl == len(body) else body[:hl]), hl


class _OutOfRange(ValueError):
    pass


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # 1e400: msgspec refuses it, json would make it infinity
        raise _OutOfRange(text if len(text) <= 40 else text[:37] + "...")
    return value


# A UTF-16 surrogate written as a JSON escape: the only way a string can hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _parse_lenient(header: bytes, exc: Exception) -> Any:
    """Parse JSON that msgspec rejected: in practice, JSON with NaN/Infinity literals (Triton).

    What else msgspec refuses is refused here too: invalid UTF-8, numbers beyond a float's range and
    strings holding a lone UTF-16 surrogate (``"\\ud800"``: no UTF-8 text holds one, so no name, id or
    BYTES element may either).
    """
    import json

    try:
        doc = json.loads(header.decode("utf-8"), parse_float=_finite_float)
    except _OutOfRange as e:
        raise CodecError(f"inference header holds a number out of range: {e}") from None
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CodecError(f"inference header is not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(header):
        where = _lone_surrogate(doc)
        if where is not None:
            raise CodecError(
                f"{where} is not valid Unicode: it holds a lone UTF-16 surrogate (a \\ud800-\\udfff "
                "escape without its pair)"
            )
    return doc


def _is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _lone_surrogate(doc: Any) -> str | None:
    """Where the first string holding a lone surrogate is (``'inputs[0].name'``), or None."""
    stack: list[tuple[str, Any]] = [("", doc)]
    while stack:  # no recursion: the depth is bounded, but a loop costs nothing more
        path, value = stack.pop()
        t = type(value)
        if t is str:
            if not _is_unicode(value):
                return f"'{path}'" if path else "the inference header"
        elif t is dict:
            items = []
            for key, item in value.items():
                if not _is_unicode(key):
                    return f"a key of '{path}'" if path else "a key of the inference header"
                items.append((f"{path}.{key}" if path else key, item))
            stack.extend(reversed(items))
        elif t is list:
            stack.extend(reversed([(f"{path}[{i}]", item) for i, item in enumerate(value)]))
    return None


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def json_depth(text: bytes) -> int:
    """How deep the JSON ``text`` nests arrays and objects (brackets inside strings do not count), found
    without parsing it: the strings are cut out with one regular expression and the brackets counted with
    numpy, so no parser recurses into a hostile document."""
    brackets = _JSON_STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    # '[' (0x5b) and '{' (0x7b) have bit 1 set, ']' (0x5d) and '}' (0x7d) do not: +1 and -1.
    steps = (np.frombuffer(brackets, np.uint8) & 2).astype(np.int64) - 1
    return int(np.cumsum(steps).max())


def json_too_deep(text: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON ``text`` nests arrays and objects more than ``limit`` levels deep.

    Two ``bytes.count`` calls when it cannot (a document with at most ``limit`` brackets), so it is cheap on
    the predict path; :func:`json_depth` otherwise. The server checks every JSON body it reads with it.
    """
    if text.count(b"[") + text.count(b"{") <= limit:
        return False
    return json_depth(text) > limit


def _too_deep(kind: str) -> CodecError:
    return CodecError(f"the inference {kind} nests arrays and objects more than {MAX_JSON_DEPTH} levels deep")


def _parse_generic(header: bytes) -> Any:
    """Untyped parse after a schema failure: the part msgspec had not reached may be bad too."""
    try:
        return _GENERIC_DECODER.decode(header)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return _parse_lenient(header, exc)


def _tensor_from_doc(index: int, doc: Any, what: str) -> _Tensor:
    where = f"{what} #{index}"
    if type(doc) is not dict:
        raise CodecError(f"{where} must be a JSON object, got {type(doc).__name__}")
    name = doc.get("name")
    if type(name) is not str:
        raise CodecError(
            f"{where}: 'name' is missing" if name is None else f"{where}: 'name' must be a string"
        )
    shape = doc.get("shape")
    if shape is None:
        raise _err(what, name, "'shape' is missing")
    if type(shape) is not list or any(type(d) is not int for d in shape):
        raise _err(what, name, f"'shape' must be a list of integers, got {_short(shape)}")
    datatype = doc.get("datatype")
    if datatype is None:
        raise _err(what, name, "'datatype' is missing")
    if type(datatype) is not str:
        raise _err(what, name, f"'datatype' must be a string, got {_short(datatype)}")
    parameters = doc.get("parameters")
    if parameters is not None and type(parameters) is not dict:
        raise _err(what, name, "'parameters' must be a JSON object")
    data = doc.get("data")  # a decoded value, not a Raw: _decode_tensors handles both
    return _Tensor(name=name, shape=shape, datatype=datatype, parameters=parameters, data=data)  # type: ignore[arg-type]


def _check_common(doc: Any, kind: str) -> None:
    if type(doc) is not dict:
        raise CodecError(f"inference {kind} must be a JSON object, got {type(doc).__name__}")
    for key in ("id", "model_version", "model_name") if kind == "response" else ("id",):
        value = doc.get(key)
        if value is not None and type(value) is not str:
            raise CodecError(f"'{key}' must be a string, got {_short(value)}")
    parameters = doc.get("parameters")
    if parameters is not None and type(parameters) is not dict:
        raise CodecError("'parameters' must be a JSON object")


def _tensors_from_doc(doc: dict, key: str, what: str) -> list[_Tensor]:
    tensors = doc.get(key)
    if tensors is None:
        raise CodecError(f"'{key}' is missing")
    if type(tensors) is not list:
        raise CodecError(f"'{key}' must be a list")
    return [_tensor_from_doc(i, t, what) for i, t in enumerate(tensors)]


def _request_from_doc(doc: Any, exc: Exception | None) -> _Request:
    """Validate a generically decoded request, raising precise, named errors."""
    _check_common(doc, "request")
    inputs = _tensors_from_doc(doc, "inputs", "input")
    outputs = doc.get("outputs")
    requested = None
    if outputs is not None:
        if type(outputs) is not list:
            raise CodecError("'outputs' must be a list")
        requested = []
        for i, out in enumerate(outputs):
            if type(out) is not dict:
                raise CodecError(f"requested output #{i} must be a JSON object")
            name = out.get("name")
            if type(name) is not str:
                raise CodecError(f"requested output #{i}: 'name' must be a string")
            parameters = out.get("parameters")
            if parameters is not None and type(parameters) is not dict:
                raise _err("requested output", name, "'parameters' must be a JSON object")
            requested.append(_Requested(name=name, parameters=parameters))
    if exc is not None:  # msgspec saw a problem the checks above did not: report it as is
        raise CodecError(f"invalid inference request: {exc}")
    return _Request(
        inputs=inputs,  # type: ignore[arg-type]
        id=doc.get("id"),
        parameters=doc.get("parameters"),
        outputs=requested,
    )


def _response_from_doc(doc: Any, exc: Exception | None) -> _Response:
    if type(doc) is dict and "error" in doc and "outputs" not in doc:
        raise CodecError(f"server returned an error: {doc['error']}", status=502)
    _check_common(doc, "response")
    if type(doc.get("model_name")) is not str:
        raise CodecError("'model_name' is missing")
    outputs = _tensors_from_doc(doc, "outputs", "output")
    if exc is not None:
        raise CodecError(f"invalid inference response: {exc}")
    return _Response(
        model_name=doc["model_name"],
        outputs=outputs,  # type: ignore[arg-type]
        model_version=doc.get("model_version"),
        id=doc.get("id"),
        parameters=doc.get("parameters"),
    )


def _flatten(values: list) -> list:
    """Row-major flattening of nested lists, without recursion (nesting depth is untrusted)."""
    out: list = []
    stack = [iter(values)]
    while stack:
        for v in stack[-1]:
            if type(v) is list:
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


def _checked_flat(what: str, name: str, datatype: str, values: Any) -> list:
    """Flatten nested ``data`` and check every element's JSON type against the datatype."""
    if type(values) is not list:
        values = [values]  # scalar data, e.g. for shape []
    elif any(type(v) is list for v in values):
        values = _flatten(values)
    try:
        return msgspec.convert(values, _FLAT_TYPES[datatype])
    except msgspec.ValidationError:
        pass
    want = _ELEMENT_TYPES[datatype]
    for i, v in enumerate(values):
        t = type(v)
        if t is not want and not (want is float and t is int):
            raise _err(what, name, f"data[{i}] is {_short(v)}, expected {_EXPECTED[datatype]} for {datatype}")
    # Every element has the right JSON type, so msgspec refused a number beyond any float (10**400).
    raise _err(what, name, f"data holds a value out of range for {datatype}")


def _from_json(
    what: str, name: str, datatype: str, dtype: np.dtype, shape: list[int], count: int, data: Any
) -> np.ndarray:
    if type(data) is msgspec.Raw:
        try:
            values = _FLAT_DECODERS[datatype].decode(data)
        except msgspec.ValidationError:  # nested, scalar, wrongly typed or out of range: the slow path
            try:
                generic = _GENERIC_DECODER.decode(data)
            except msgspec.ValidationError as e:  # a number beyond any float: 1e400
                raise _err(what, name, f"data holds a value out of range for {datatype}: {e}") from None
            except (msgspec.DecodeError, UnicodeDecodeError) as e:
                raise _err(what, name, f"data is not valid JSON: {e}") from None
            values = _checked_flat(what, name, datatype, generic)
        except (msgspec.DecodeError, UnicodeDecodeError) as e:
            # msgspec checks the UTF-8 of strings inside a Raw only when decoding them: "Invalid UTF-8
            # encoded string" is a DecodeError in msgspec 0.23, a UnicodeDecodeError in older releases.
            raise _err(what, name, f"data is not valid JSON: {e}") from None
    else:
        values = _checked_flat(what, name, datatype, data)
    if len(values) != count:
        raise _err(what, name, f"shape {shape} needs {count} elements, got {len(values)}")
    if datatype == "BYTES":
        arr = np.empty(count, dtype=object)
        try:
            arr[:] = [s.encode() for s in values]
        except UnicodeEncodeError as e:
            raise _err(what, name, f"BYTES data is not valid UTF-8: {e}") from None
        return arr
    try:
        if datatype in _NARROW_FLOATS:
            with np.errstate(over="raise"):
                return np.array(values, dtype=dtype)
        return np.array(values, dtype=dtype)
    except (OverflowError, FloatingPointError):
        raise _err(what, name, f"data holds a value out of range for {datatype}") from None


def _bytes_elements(
    what: str, name: str, shape: list[int], count: int, body: bytes, start: int, stop: int
) -> np.ndarray:
    out: list[bytes] = []
    append = out.append
    from_bytes = int.from_bytes
    p = start
    for i in range(count):
        q = p + 4
        if q > stop:
            if p == stop:
                raise _err(what, name, f"shape {shape} needs {count} BYTES elements, binary data holds {i}")
            raise _err(what, name, f"BYTES element {i}: 4-byte length prefix truncated")
        p = q + from_bytes(body[p:q], "little")
        if p > stop:
            raise _err(
                what,
                name,
                f"BYTES element {i}: length {p - q} overruns binary_data_size {stop - start}",
            )
        append(body[q:p])
    if p != stop:
        raise _err(
            what,
            name,
            f"shape {shape} needs {count} BYTES elements, but {stop - p} of binary_data_size "
            f"{stop - start} bytes are left after them",
        )
    arr = np.empty(count, dtype=object)
    arr[:] = out
    return arr


def _decode_tensors(
    tensors: list[_Tensor], body: bytes, pos: int, what: str
) -> list[tuple[_Tensor, np.ndarray]]:
    end = len(body)
    seen: set[str] = set()
    decoded = []
    last_binary = None
    for t in tensors:
        name = t.name
        if name in seen:
            raise _err(what, name, "duplicate name", 422)
        seen.add(name)
        datatype = t.datatype
        dtype = _DTYPES.get(datatype)
        if dtype is None:
            raise _err(what, name, f"unknown datatype {datatype!r}; expected one of {_DATATYPE_LIST}", 422)
        shape = t.shape
        if len(shape) > MAX_DIMS:
            raise _err(what, name, f"shape has {len(shape)} dimensions; at most {MAX_DIMS} are supported", 422)
        count = 1
        for d in shape:
            if d < 0:
                raise _err(what, name, f"shape {shape} has a negative dimension", 422)
            count *= d
        if count > _MAX_ELEMENTS:
            raise _err(what, name, f"shape {shape} has more elements than an array can hold", 422)
        params = t.parameters
        size = params.get("binary_data_size") if params else None
        data: Any = t.data
        if type(data) is msgspec.Raw:
            has_data = len(data) != 0 and data != _NULL
        else:
            has_data = data is not None
        if size is not None:
            if type(size) is not int or size < 0:
                raise _err(
                    what,
                    name,
                    f"parameters.binary_data_size must be a non-negative integer, got {_short(size)}",
                )
            if has_data:
                raise _err(what, name, "has both 'data' and parameters.binary_data_size")
            remaining = end - pos
            if datatype == "BYTES":
                if size > remaining:
                    raise _err(
                        what,
                        name,
                        f"binary data truncated: binary_data_size {size} but only {remaining} bytes remain",
                    )
                arr = _bytes_elements(what, name, shape, count, body, pos, pos + size)
            else:
                expected = count * dtype.itemsize
                if size != expected:
                    raise _err(
                        what,
                        name,
                        f"binary_data_size {size} does not match shape {shape} of {datatype} "
                        f"({expected} bytes)",
                    )
                if size > remaining:
                    raise _err(
                        what,
                        name,
                        f"binary data truncated: binary_data_size {size} but only {remaining} bytes remain",
                    )
                arr = np.frombuffer(body, dtype=dtype, count=count, offset=pos)
                if datatype == "BOOL" and count and arr.view(np.uint8).max() > 1:
                    raise _err(what, name, "BOOL binary data must be bytes 0 or 1")
            pos += size
            last_binary = name
        elif has_data:
            arr = _from_json(what, name, datatype, dtype, shape, count, data)
        elif params and "shared_memory_region" in params:
            raise _err(what, name, "shared-memory tensors are not supported")
        else:
            raise _err(what, name, "'data' is missing (and no parameters.binary_data_size)")
        try:
            arr = arr.reshape(shape)
        except ValueError:  # no elements, but dimensions whose product numpy cannot represent: [2**62, 4, 0]
            raise _err(what, name, f"shape {shape} has dimensions too large for an array", 422) from None
        decoded.append((t, arr))
    if pos != end:
        if last_binary is None:
            raise CodecError(
                f"{end - pos} bytes of binary data follow the inference header, but no {what} "
                "has parameters.binary_data_size"
            )
        raise _err(
            what,
            last_binary,
            f"{end - pos} bytes of binary data left over after this, the last binary {what}",
        )
    return decoded


def decode_request(body: bytes, *, header_length: int | str | None = None) -> InferRequest:
    """Decode an inference request body.

    ``header_length`` is the ``Inference-Header-Content-Length`` header (an int, or the raw
    header string): the first ``header_length`` bytes are the JSON header and the rest is the
    binary data of the inputs that have ``parameters.binary_data_size``, in input order.
    Raises :class:`CodecError` on any problem, and nothing else.
    """
    try:  # free in Python 3.11+ unless something raises
        return _decode_request(body, header_length)
    except _DECODE_ERRORS as exc:
        # What the checks below do not name: a safety net, so that no msgspec release and no input makes
        # the decoder raise anything but a CodecError.
        raise CodecError(f"invalid inference request: {type(exc).__name__}: {exc}") from None


#: What a decoder may raise on hostile input besides CodecError (msgspec's errors are ValueErrors today).
_DECODE_ERRORS = (msgspec.MsgspecError, ValueError, ArithmeticError, RecursionError)


def _decode_request(body: bytes, header_length: int | str | None) -> InferRequest:
    body, header, pos = _split(body, header_length)
    # Two bytes.count calls unless the header has more than MAX_JSON_DEPTH brackets.
    if header.count(b"[") + header.count(b"{") > MAX_JSON_DEPTH and json_depth(header) > MAX_JSON_DEPTH:
        raise _too_deep("header")
    try:
        req: _Request = _REQUEST_DECODER.decode(header)
    except msgspec.ValidationError as exc:
        req = _request_from_doc(_parse_generic(header), exc)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        req = _request_from_doc(_parse_lenient(header, exc), None)

    inputs = [
        InferInput(t.name, tuple(t.shape), t.datatype, arr, t.parameters or {})
        for t, arr in _decode_tensors(req.inputs, body, pos, "input")  # type: ignore[arg-type]
    ]
    parameters = req.parameters or {}
    flag = parameters.get("binary_data_output")
    if flag is not None and type(flag) is not bool:
        raise CodecError(f"parameters.binary_data_output must be a boolean, got {_short(flag)}")
    outputs = None
    if req.outputs is not None:
        outputs = []
        seen: set[str] = set()
        for o in req.outputs:
            name = o.name
            if name in seen:
                raise _err("requested output", name, "duplicate name", 422)
            seen.add(name)
            oparams = o.parameters or {}
            binary = oparams.get("binary_data")
            if binary is not None and type(binary) is not bool:
                raise _err(
                    "requested output",
                    name,
                    f"parameters.binary_data must be a boolean, got {_short(binary)}",
                )
            outputs.append(RequestedOutput(name, binary, oparams))
    return InferRequest(req.id, inputs, outputs, parameters)


def decode_response(body: bytes, *, header_length: int | str | None = None) -> InferResponse:
    """Decode an inference response body (the client side of :func:`encode_response`).

    ``header_length`` is the response's ``Inference-Header-Content-Length`` header, if any.
    Raises :class:`CodecError` on any problem, and nothing else.
    """
    try:
        return _decode_response(body, header_length)
    except _DECODE_ERRORS as exc:
        raise CodecError(f"invalid inference response: {type(exc).__name__}: {exc}") from None


def _decode_response(body: bytes, header_length: int | str | None) -> InferResponse:
    body, header, pos = _split(body, header_length)
    if json_too_deep(header):
        raise _too_deep("response")
    try:
        resp: _Response = _RESPONSE_DECODER.decode(header)
    except msgspec.ValidationError as exc:
        resp = _response_from_doc(_parse_generic(header), exc)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        resp = _response_from_doc(_parse_lenient(header, exc), None)
    outputs = {t.name: arr for t, arr in _decode_tensors(resp.outputs, body, pos, "output")}  # type: ignore[arg-type]
    return InferResponse(resp.model_name, resp.model_version, resp.id, outputs, resp.parameters or {})


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def _bytes_list(what: str, name: str, arr: np.ndarray) -> list:
    items = arr.ravel().tolist()
    for i, v in enumerate(items):
        t = type(v)
        if t is bytes:
            continue
        if isinstance(v, str):
            items[i] = v.encode()
        elif isinstance(v, (bytes, bytearray, memoryview)):
            items[i] = bytes(v)
        else:
            raise _err(what, name, f"BYTES element {i} is a {t.__name__}, expected bytes or str", 500)
    return items


def _encode_tensor(what: str, name: str, value: Any, binary: bool) -> tuple[dict[str, Any], Any]:
    """The tensor's JSON entry and, when ``binary``, a bytes-like of its binary data."""
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    try:
        datatype = datatype_of(arr.dtype)
    except CodecError as e:
        raise _err(what, name, e.detail, 500) from None
    entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
    if datatype == "BYTES":
        items = _bytes_list(what, name, arr)
        if binary:
            parts = []
            for b in items:
                parts.append(len(b).to_bytes(4, "little"))
                parts.append(b)
            raw: Any = b"".join(parts)
            entry["parameters"] = {"binary_data_size": len(raw)}
            return entry, raw
        try:
            entry["data"] = [b.decode() for b in items]
        except UnicodeDecodeError:
            raise _err(
                what, name, "BYTES data is not valid UTF-8, so it can only be sent as binary data", 500
            ) from None
        return entry, None
    if binary:
        wire = _DTYPES[datatype]
        if arr.dtype != wire or not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr, dtype=wire)
        entry["parameters"] = {"binary_data_size": arr.nbytes}
        return entry, arr  # bytes.join() reads C-contiguous arrays through the buffer protocol
    values = arr.ravel().tolist()
    if datatype in _FLOAT_TYPES and not np.isfinite(arr).all():
        import json  # msgspec writes NaN/inf as null; Triton reads and writes NaN/Infinity

        entry["data"] = msgspec.Raw(json.dumps(values, separators=(",", ":")).encode())
    else:
        entry["data"] = values
    return entry, None


def _binary_predicate(binary: bool | Collection[str]) -> Any:
    if binary is True or binary is False:
        return binary
    if isinstance(binary, str):
        return frozenset((binary,))
    return binary if isinstance(binary, (set, frozenset, dict)) else frozenset(binary)


def _encode_tensors(
    what: str, tensors: Mapping[str, Any], binary: bool | Collection[str]
) -> tuple[list[dict[str, Any]], list[Any]]:
    sel = _binary_predicate(binary)
    entries = []
    raws = []
    for name, value in tensors.items():
        entry, raw = _encode_tensor(what, name, value, sel if type(sel) is bool else name in sel)
        entries.append(entry)
        if raw is not None:
            raws.append(raw)
    return entries, raws


def _finish(doc: dict[str, Any], raws: list[Any]) -> tuple[bytes, dict[str, str]]:
    header = _ENCODER.encode(doc)
    if not raws:
        return header, {"Content-Type": "application/json"}
    return b"".join([header, *raws]), {
        HEADER_LENGTH_HEADER: str(len(header)),
        "Content-Type": "application/octet-stream",
    }


def encode_response(
    *,
    model_name: str,
    model_version: str | None,
    outputs: Mapping[str, np.ndarray],
    request_id: str | None = None,
    binary_outputs: bool | Collection[str] = False,
    parameters: Mapping[str, Any] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Encode an inference response; returns ``(body, headers to add)``.

    ``binary_outputs`` is True/False for all outputs or the names of the outputs to send as
    binary data (see :meth:`InferRequest.binary_outputs`). With any binary output the headers
    are ``Inference-Header-Content-Length`` and ``Content-Type: application/octet-stream``,
    else ``Content-Type: application/json``. Outputs are written in mapping order; arrays of
    other dtypes than the V2 ones raise :class:`CodecError` (status 500).
    """
    entries, raws = _encode_tensors("output", outputs, binary_outputs)
    doc: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        doc["model_version"] = model_version
    if request_id is not None:
        doc["id"] = request_id
    if parameters:
        doc["parameters"] = dict(parameters)
    doc["outputs"] = entries
    return _finish(doc, raws)


def encode_request(
    inputs: Mapping[str, np.ndarray],
    *,
    binary: bool | Collection[str] = True,
    request_id: str | None = None,
    outputs: Collection[str] | None = None,
    binary_outputs: bool = True,
    parameters: Mapping[str, Any] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Encode an inference request (the client side of :func:`decode_request`).

    ``binary`` is True/False for all inputs or the names of the inputs to send as binary data.
    ``outputs`` names the outputs to ask for (None: all), each with
    ``parameters.binary_data = binary_outputs``; without ``outputs`` and with
    ``binary_outputs`` the request parameter ``binary_data_output`` is set instead, as
    tritonclient does.
    """
    entries, raws = _encode_tensors("input", inputs, binary)
    doc: dict[str, Any] = {}
    if request_id is not None:
        doc["id"] = request_id
    params = dict(parameters) if parameters else {}
    if outputs is None:
        if binary_outputs:
            params.setdefault("binary_data_output", True)
    if params:
        doc["parameters"] = params
    doc["inputs"] = entries
    if outputs is not None:
        out_params = {"binary_data": bool(binary_outputs)}
        doc["outputs"] = [{"name": n, "parameters": out_params} for n in outputs]
    return _finish(doc, raws)
