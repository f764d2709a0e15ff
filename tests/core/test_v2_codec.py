"""Tests for modelyard.protocol.v2, the Open Inference Protocol v2 tensor codec."""

from __future__ import annotations

import json

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from modelyard.protocol import v2
from modelyard.protocol.v2 import CodecError

HL = v2.HEADER_LENGTH_HEADER
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------------------------
# strategies and helpers
# --------------------------------------------------------------------------------------------

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@st.composite
def tensors(draw, datatype=None, *, utf8=False):
    """An array of a V2 datatype. ``utf8``: BYTES elements are valid UTF-8 (needed for JSON)."""
    datatype = datatype or draw(st.sampled_from(v2.DATATYPES))
    shape = draw(shapes)
    if datatype == "BYTES":
        elements = st.text(max_size=6).map(str.encode) if utf8 else st.binary(max_size=6)
        return draw(hnp.arrays(object, shape, elements=elements))
    return draw(hnp.arrays(v2.numpy_dtype(datatype), shape))


@st.composite
def tensor_sets(draw, *, utf8_json=True):
    """``({name: array}, names to send as binary)``: 1-4 tensors, mixed binary and JSON."""
    names = draw(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=4, unique=True))
    binary = {n for n in names if draw(st.booleans())}
    arrays = {n: draw(tensors(utf8=utf8_json and n not in binary)) for n in names}
    return arrays, binary


def assert_same(got: np.ndarray, want: np.ndarray, *, exact: bool = True) -> None:
    """Same dtype, shape and values; ``exact`` also compares bit patterns (binary data)."""
    want = np.asarray(want)
    assert got.shape == want.shape
    if want.dtype == object:
        assert got.dtype == object
        assert all(type(x) is bytes for x in got.flat)
        assert got.tolist() == want.tolist()
        return
    assert got.dtype == want.dtype
    if exact:
        assert got.tobytes() == want.tobytes()
    else:  # JSON: NaN payloads/signs are not preserved; everything else is, including -0.0
        np.testing.assert_array_equal(got, want)
        if want.dtype.kind == "f":
            ok = ~np.isnan(want)
            assert (np.signbit(got[ok]) == np.signbit(want[ok])).all()


def body_of(doc: dict, binary: bytes = b"") -> tuple[bytes, int | None]:
    header = json.dumps(doc).encode()
    return header + binary, (len(header) if binary else None)


def raises(body: bytes, header_length: int | None = None, *, response: bool = False) -> CodecError:
    decode = v2.decode_response if response else v2.decode_request
    with pytest.raises(CodecError) as info:
        decode(body, header_length=header_length)
    return info.value


def tensor(name="x", shape=(2, 3), datatype="FP32", **extra) -> dict:
    return {"name": name, "shape": list(shape), "datatype": datatype, **extra}


def bin_tensor(name="x", shape=(2, 3), datatype="FP32", size=24) -> dict:
    return tensor(name, shape, datatype, parameters={"binary_data_size": size})


# --------------------------------------------------------------------------------------------
# datatypes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("datatype", v2.DATATYPES)
def test_datatype_mapping_round_trips(datatype):
    assert v2.datatype_of(v2.numpy_dtype(datatype)) == datatype


def test_datatype_of_other_spellings():
    assert v2.datatype_of(np.dtype(">i4")) == "INT32"
    assert v2.datatype_of(np.float16) == "FP16"
    assert v2.datatype_of(bool) == "BOOL"
    assert v2.datatype_of(np.dtype("S3")) == "BYTES"
    assert v2.datatype_of(np.dtype("U3")) == "BYTES"
    assert v2.numpy_dtype("BYTES") == np.dtype(object)
    assert v2.numpy_dtype("FP32") == np.float32


@pytest.mark.parametrize("dtype", [np.complex64, np.dtype("M8[s]"), np.dtype("V4")], ids=str)
def test_datatype_of_unsupported(dtype):
    with pytest.raises(CodecError) as info:
        v2.datatype_of(dtype)
    assert info.value.status == 500


def test_numpy_dtype_unknown():
    with pytest.raises(CodecError) as info:
        v2.numpy_dtype("FP128")
    assert info.value.status == 422
    assert "unknown datatype 'FP128'; expected one of BOOL, UINT8" in info.value.detail


# --------------------------------------------------------------------------------------------
# round trips (hypothesis)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("datatype", v2.DATATYPES)
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@SETTINGS
@given(data=st.data())
def test_request_round_trip_per_datatype(datatype, binary, data):
    arr = data.draw(tensors(datatype, utf8=not binary))
    body, headers = v2.encode_request({"x": arr}, binary=binary)
    req = v2.decode_request(body, header_length=headers.get(HL))
    (inp,) = req.inputs
    assert (inp.name, inp.shape, inp.datatype) == ("x", arr.shape, datatype)
    assert_same(inp.data, arr, exact=binary)
    assert ("binary_data_size" in inp.parameters) == binary


@pytest.mark.parametrize("datatype", v2.DATATYPES)
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@SETTINGS
@given(data=st.data())
def test_response_round_trip_per_datatype(datatype, binary, data):
    arr = data.draw(tensors(datatype, utf8=not binary))
    body, headers = v2.encode_response(
        model_name="m", model_version=None, outputs={"y": arr}, binary_outputs=binary
    )
    resp = v2.decode_response(body, header_length=headers.get(HL))
    assert list(resp.outputs) == ["y"]
    assert_same(resp.outputs["y"], arr, exact=binary)


@SETTINGS
@given(
    case=tensor_sets(),
    request_id=st.none() | st.text(max_size=5),
    outputs=st.none() | st.lists(st.text(min_size=1, max_size=4), unique=True, max_size=3),
    binary_outputs=st.booleans(),
)
def test_request_round_trip_mixed(case, request_id, outputs, binary_outputs):
    arrays, binary = case
    body, headers = v2.encode_request(
        arrays,
        binary=binary,
        request_id=request_id,
        outputs=outputs,
        binary_outputs=binary_outputs,
        parameters={"priority": 3},
    )
    if binary:
        assert headers == {HL: headers[HL], "Content-Type": "application/octet-stream"}
        assert json.loads(body[: int(headers[HL])])  # the header is exactly the JSON part
    else:
        assert headers == {"Content-Type": "application/json"}
    req = v2.decode_request(body, header_length=headers.get(HL))
    assert req.id == request_id
    assert req.parameters["priority"] == 3
    assert [i.name for i in req.inputs] == list(arrays)
    for name, got in req.as_arrays().items():
        assert_same(got, arrays[name], exact=name in binary)
    if outputs is None:
        assert req.outputs is None
        assert req.binary_outputs() is binary_outputs
    else:
        assert [(o.name, o.binary_data) for o in req.outputs] == [(n, binary_outputs) for n in outputs]
        assert req.binary_outputs() == (frozenset(outputs) if binary_outputs else frozenset())


@SETTINGS
@given(case=tensor_sets(), version=st.none() | st.just("3"), request_id=st.none() | st.text(max_size=5))
def test_response_round_trip_mixed(case, version, request_id):
    arrays, binary = case
    body, headers = v2.encode_response(
        model_name="model",
        model_version=version,
        outputs=arrays,
        request_id=request_id,
        binary_outputs=binary,
        parameters={"sequence_end": True},
    )
    resp = v2.decode_response(body, header_length=headers.get(HL))
    assert (resp.model_name, resp.model_version, resp.id) == ("model", version, request_id)
    assert resp.parameters == {"sequence_end": True}
    assert list(resp.outputs) == list(arrays)
    for name, got in resp.outputs.items():
        assert_same(got, arrays[name], exact=name in binary)


@SETTINGS
@given(arr=tensors(utf8=True))
def test_nested_json_data_is_accepted(arr):
    data = [x.decode() for x in arr.flat] if arr.dtype == object else arr.tolist()
    doc = {"inputs": [tensor("x", arr.shape, v2.datatype_of(arr.dtype), data=data)]}
    text = json.dumps(doc, allow_nan=True).encode()  # nested lists, NaN/Infinity literals
    assert_same(v2.decode_request(text).inputs[0].data, arr, exact=False)


# --------------------------------------------------------------------------------------------
# examples
# --------------------------------------------------------------------------------------------


def test_kserve_spec_example():
    body = json.dumps(
        {
            "id": "42",
            "inputs": [
                {"name": "input0", "shape": [2, 2], "datatype": "UINT32", "data": [1, 2, 3, 4]},
                {"name": "input1", "shape": [3], "datatype": "BOOL", "data": [True, False, True]},
            ],
            "outputs": [{"name": "output0"}],
        }
    ).encode()
    req = v2.decode_request(body)
    assert req.id == "42"
    arrays = req.as_arrays()
    assert_same(arrays["input0"], np.array([[1, 2], [3, 4]], np.uint32))
    assert_same(arrays["input1"], np.array([True, False, True]))
    assert req.outputs == [v2.RequestedOutput("output0", None, {})]
    assert req.binary_outputs() == frozenset()
    assert req.binary_outputs(default=True) == frozenset({"output0"})


def test_scalar_data_and_null_id():
    req = v2.decode_request(
        b'{"id": null, "inputs": [{"name": "s", "shape": [], "datatype": "INT8", "data": 7}]}'
    )
    assert req.id is None
    assert_same(req.inputs[0].data, np.array(7, np.int8))


def test_binary_inputs_are_zero_copy_views():
    arr = np.arange(6, dtype=np.float32)
    body, headers = v2.encode_request({"x": arr})
    data = v2.decode_request(body, header_length=int(headers[HL])).inputs[0].data
    assert not data.flags.writeable
    assert data.base is not None


def test_request_binary_data_output_parameter():
    body = json.dumps(
        {
            "inputs": [],
            "parameters": {"binary_data_output": True},
            "outputs": [{"name": "a"}, {"name": "b", "parameters": {"binary_data": False}}],
        }
    ).encode()
    req = v2.decode_request(body)
    assert req.binary_outputs() == frozenset({"a"})


def test_encode_response_headers_and_layout():
    outputs = {"a": np.array([1, 2], np.int32), "b": np.array([True]), "c": np.array([b"hi"], object)}
    body, headers = v2.encode_response(
        model_name="m", model_version="1", outputs=outputs, binary_outputs=["a", "c"]
    )
    n = int(headers[HL])
    assert headers["Content-Type"] == "application/octet-stream"
    doc = json.loads(body[:n])
    assert doc["outputs"] == [
        {"name": "a", "datatype": "INT32", "shape": [2], "parameters": {"binary_data_size": 8}},
        {"name": "b", "datatype": "BOOL", "shape": [1], "data": [True]},
        {"name": "c", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}},
    ]
    assert body[n:] == b"\x01\x00\x00\x00\x02\x00\x00\x00" + b"\x02\x00\x00\x00hi"
    body, headers = v2.encode_response(
        model_name="m", model_version=None, outputs={"b": np.array([True, False])}, binary_outputs=True
    )
    assert body[int(headers[HL]) :] == b"\x01\x00"  # BOOL: one byte per element


def test_encode_accepts_str_and_non_contiguous_and_big_endian():
    arrays = {
        "s": np.array(["héllo", b"raw\xff"], dtype=object),
        "u": np.array(["ab", "c"]),
        "t": np.arange(12, dtype=np.int16).reshape(3, 4).T,
        "be": np.arange(3, dtype=">f8"),
    }
    body, headers = v2.encode_request(arrays, binary=True)
    got = v2.decode_request(body, header_length=headers[HL]).as_arrays()
    assert got["s"].tolist() == ["héllo".encode(), b"raw\xff"]
    assert got["u"].tolist() == [b"ab", b"c"]
    assert_same(got["t"], np.ascontiguousarray(arrays["t"]))
    assert_same(got["be"], np.arange(3, dtype=np.float64))


def test_non_finite_floats_in_json_use_triton_literals():
    body, _ = v2.encode_response(
        model_name="m", model_version=None, outputs={"y": np.array([np.nan, -np.inf, 1.5], np.float32)}
    )
    assert b'"data":[NaN,-Infinity,1.5]' in body
    assert_same(
        v2.decode_response(body).outputs["y"], np.array([np.nan, -np.inf, 1.5], np.float32), exact=False
    )


# --------------------------------------------------------------------------------------------
# malformed requests
# --------------------------------------------------------------------------------------------

F32x6 = np.arange(6, dtype=np.float32).tobytes()

MALFORMED = {
    # id: (doc or raw body, binary part, status, input name, detail substring)
    "bad json": (b'{"inputs": [', b"", 400, None, "not valid JSON"),
    "bad utf8": (b'{"inputs": [{"name": "\xff"}]}', b"", 400, None, "not valid JSON"),
    "bad utf8 in data": (
        b'{"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["\xff"]}]}',
        b"",
        400,
        "x",
        "UTF-8",
    ),
    "schema error then bad utf8": (b'{"id": 1, "inputs": [], "x": "\xff"}', b"", 400, None, "not valid JSON"),
    "schema error then NaN": (b'{"id": 1, "inputs": [], "x": NaN}', b"", 400, None, "'id' must be a string"),
    "not an object": ([1, 2], b"", 400, None, "must be a JSON object"),
    "no inputs": ({"id": "1"}, b"", 400, None, "'inputs' is missing"),
    "inputs not list": ({"inputs": {}}, b"", 400, None, "'inputs' must be a list"),
    "input not object": ({"inputs": [3]}, b"", 400, None, "input #0 must be a JSON object"),
    "id not string": ({"id": 5, "inputs": []}, b"", 400, None, "'id' must be a string"),
    "parameters not object": ({"parameters": [], "inputs": []}, b"", 400, None, "'parameters'"),
    "missing name": (
        {"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]},
        b"",
        400,
        None,
        "input #0: 'name' is missing",
    ),
    "missing shape": (
        {"inputs": [{"name": "x", "datatype": "FP32", "data": [1]}]},
        b"",
        400,
        "x",
        "'shape' is missing",
    ),
    "missing datatype": (
        {"inputs": [{"name": "x", "shape": [1], "data": [1]}]},
        b"",
        400,
        "x",
        "'datatype' is missing",
    ),
    "missing data": ({"inputs": [tensor()]}, b"", 400, "x", "'data' is missing"),
    "null data": ({"inputs": [tensor(data=None)]}, b"", 400, "x", "'data' is missing"),
    "shape not ints": (
        {"inputs": [tensor(shape=[2, 1.5], data=[1, 2])]},
        b"",
        400,
        "x",
        "'shape' must be a list of integers",
    ),
    "shape bool": (
        {"inputs": [tensor(shape=[True], data=[1])]},
        b"",
        400,
        "x",
        "'shape' must be a list of integers",
    ),
    "negative dim": (
        {"inputs": [tensor(shape=[-1, 3], data=[1, 2, 3])]},
        b"",
        422,
        "x",
        "negative dimension",
    ),
    "unknown datatype": (
        {"inputs": [tensor(datatype="FP128", data=[1] * 6)]},
        b"",
        422,
        "x",
        "input 'x': unknown datatype 'FP128'; expected one of BOOL, UINT8",
    ),
    "count": (
        {"inputs": [tensor(data=[1, 2, 3, 4, 5])]},
        b"",
        400,
        "x",
        "input 'x': shape [2, 3] needs 6 elements, got 5",
    ),
    "nested count": (
        {"inputs": [tensor(data=[[1, 2, 3], [4, 5, 6], [7]])]},
        b"",
        400,
        "x",
        "needs 6 elements, got 7",
    ),
    "scalar count": ({"inputs": [tensor(shape=[], data=[1, 2])]}, b"", 400, "x", "needs 1 elements, got 2"),
    "str in int": (
        {"inputs": [tensor(datatype="INT32", data=[1, 2, 3, 4, 5, "6"])]},
        b"",
        400,
        "x",
        "data[5] is '6', expected a JSON integer",
    ),
    "float in int": (
        {"inputs": [tensor(datatype="INT64", data=[[1, 2, 3], [4, 5, 6.5]])]},
        b"",
        400,
        "x",
        "data[5] is 6.5",
    ),
    "bool in float": (
        {"inputs": [tensor(data=[1, 2, 3, 4, 5, True])]},
        b"",
        400,
        "x",
        "expected a JSON number",
    ),
    "int in bool": (
        {"inputs": [tensor(shape=[2], datatype="BOOL", data=[True, 1])]},
        b"",
        400,
        "x",
        "expected a JSON boolean",
    ),
    "number in bytes": (
        {"inputs": [tensor(shape=[1], datatype="BYTES", data=[1])]},
        b"",
        400,
        "x",
        "expected a JSON string",
    ),
    "null element": ({"inputs": [tensor(shape=[1], data=[None])]}, b"", 400, "x", "data[0] is None"),
    "uint8 range": (
        {"inputs": [tensor(shape=[2], datatype="UINT8", data=[1, 256])]},
        b"",
        400,
        "x",
        "out of range for UINT8",
    ),
    "negative unsigned": (
        {"inputs": [tensor(shape=[1], datatype="UINT64", data=[-1])]},
        b"",
        400,
        "x",
        "out of range for UINT64",
    ),
    "int64 range": (
        {"inputs": [tensor(shape=[1], datatype="INT64", data=[2**63])]},
        b"",
        400,
        "x",
        "out of range for INT64",
    ),
    "fp16 range": (
        {"inputs": [tensor(shape=[1], datatype="FP16", data=[1e5])]},
        b"",
        400,
        "x",
        "out of range for FP16",
    ),
    "duplicate inputs": (
        {"inputs": [tensor("a", [1], data=[1]), tensor("a", [1], data=[2])]},
        b"",
        422,
        "a",
        "duplicate",
    ),
    "duplicate outputs": (
        {"inputs": [], "outputs": [{"name": "o"}, {"name": "o"}]},
        b"",
        422,
        "o",
        "duplicate",
    ),
    "output binary_data type": (
        {"inputs": [], "outputs": [{"name": "o", "parameters": {"binary_data": 1}}]},
        b"",
        400,
        "o",
        "binary_data must be a boolean",
    ),
    "output without name": ({"inputs": [], "outputs": [{}]}, b"", 400, None, "requested output #0"),
    "binary_data_output type": (
        {"inputs": [], "parameters": {"binary_data_output": "yes"}},
        b"",
        400,
        None,
        "binary_data_output",
    ),
    "second input named": (
        {"inputs": [tensor("ok", [1], data=[1]), tensor("bad", [2], data=[1])]},
        b"",
        400,
        "bad",
        "input 'bad'",
    ),
    "shared memory": (
        {"inputs": [tensor(parameters={"shared_memory_region": "r"})]},
        b"",
        400,
        "x",
        "shared-memory",
    ),
    # binary data extension
    "binary size vs shape": (
        {"inputs": [bin_tensor(size=20)]},
        F32x6[:20],
        400,
        "x",
        "binary_data_size 20 does not match shape [2, 3] of FP32 (24 bytes)",
    ),
    "binary truncated": (
        {"inputs": [bin_tensor()]},
        F32x6[:10],
        400,
        "x",
        "input 'x': binary data truncated: binary_data_size 24 but only 10 bytes remain",
    ),
    "binary excess": (
        {"inputs": [bin_tensor("a"), tensor("b", [1], data=[1])]},
        F32x6 + b"\0\0",
        400,
        "a",
        "2 bytes of binary data left over",
    ),
    "binary excess no binary input": (
        {"inputs": [tensor("b", [1], data=[1])]},
        b"\0\0",
        400,
        None,
        "no input has parameters.binary_data_size",
    ),
    "binary size not int": (
        {"inputs": [bin_tensor(size="24")]},
        F32x6,
        400,
        "x",
        "binary_data_size must be a non-negative integer",
    ),
    "binary size negative": (
        {"inputs": [bin_tensor(size=-1)]},
        F32x6,
        400,
        "x",
        "binary_data_size must be a non-negative integer",
    ),
    "binary and data": (
        {"inputs": [tensor(data=[0] * 6, parameters={"binary_data_size": 24})]},
        F32x6,
        400,
        "x",
        "both 'data' and",
    ),
    "binary bool not 0/1": (
        {"inputs": [bin_tensor(shape=[2], datatype="BOOL", size=2)]},
        b"\x01\x02",
        400,
        "x",
        "BOOL binary data must be bytes 0 or 1",
    ),
    "bytes prefix truncated": (
        {"inputs": [bin_tensor(shape=[2], datatype="BYTES", size=7)]},
        b"\1\0\0\0a\0\0",
        400,
        "x",
        "BYTES element 1: 4-byte length prefix truncated",
    ),
    "bytes overrun": (
        {"inputs": [bin_tensor(shape=[1], datatype="BYTES", size=6)]},
        b"\5\0\0\0ab",
        400,
        "x",
        "BYTES element 0: length 5 overruns binary_data_size 6",
    ),
    "bytes too few": (
        {"inputs": [bin_tensor(shape=[3], datatype="BYTES", size=5)]},
        b"\1\0\0\0a",
        400,
        "x",
        "shape [3] needs 3 BYTES elements, binary data holds 1",
    ),
    "bytes leftover": (
        {"inputs": [bin_tensor(shape=[1], datatype="BYTES", size=7)]},
        b"\1\0\0\0abc",
        400,
        "x",
        "2 of binary_data_size 7 bytes are left",
    ),
    "bytes truncated": (
        {"inputs": [bin_tensor(shape=[1], datatype="BYTES", size=9)]},
        b"\1\0\0\0a",
        400,
        "x",
        "binary data truncated: binary_data_size 9 but only 5 bytes remain",
    ),
    # hardening: nothing in a request makes the decoder raise anything but a CodecError
    "bad utf8 in bytes data after NaN": (
        b'{"parameters": {"n": NaN}, "inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", '
        b'"data": ["\xff"]}]}',
        b"",
        400,
        None,
        "not valid JSON",
    ),
    "fp32 1e400": (b'{"inputs": [' + json.dumps(tensor(shape=[2])).encode()[:-1] + b', "data": [1, 1e400]}]}',
                   b"", 400, "x", "out of range for FP32"),
    "fp64 1e400": (b'{"inputs": [' + json.dumps(tensor(shape=[1], datatype="FP64")).encode()[:-1]
                   + b', "data": [-1e400]}]}', b"", 400, "x", "out of range for FP64"),
    "fp64 1e400 nested": (b'{"inputs": [' + json.dumps(tensor(shape=[1, 1], datatype="FP64")).encode()[:-1]
                          + b', "data": [[1e400]]}]}', b"", 400, "x", "out of range for FP64"),
    "fp32 huge int": (b'{"inputs": [' + json.dumps(tensor(shape=[1])).encode()[:-1] + b', "data": [1'
                      + b"0" * 400 + b']}]}', b"", 400, "x", "out of range for FP32"),
    "fp32 beyond fp32": ({"inputs": [tensor(shape=[2], data=[1.0, 1e39])]}, b"", 400, "x", "out of range for FP32"),
    "1e400 with NaN": (b'{"inputs": [' + json.dumps(tensor(shape=[2])).encode()[:-1]
                       + b', "data": [NaN, 1e400]}]}', b"", 400, None, "out of range: 1e400"),
    "1e400 in parameters": (b'{"parameters": {"p": 1e400}, "inputs": []}', b"", 400, None, "out of range"),
    "int8 range": ({"inputs": [tensor(shape=[1], datatype="INT8", data=[128])]}, b"", 400, "x",
                   "out of range for INT8"),
    "int16 range": ({"inputs": [tensor(shape=[1], datatype="INT16", data=[-32769])]}, b"", 400, "x",
                    "out of range for INT16"),
    "uint32 range": ({"inputs": [tensor(shape=[1], datatype="UINT32", data=[2**32])]}, b"", 400, "x",
                     "out of range for UINT32"),
    "uint64 range": ({"inputs": [tensor(shape=[1], datatype="UINT64", data=[2**64])]}, b"", 400, "x",
                     "out of range for UINT64"),
    "int64 huge": ({"inputs": [tensor(shape=[1], datatype="INT64", data=[10**30])]}, b"", 400, "x",
                   "out of range for INT64"),
    "65 dims": ({"inputs": [tensor(shape=[1] * 65, data=[1])]}, b"", 422, "x", "65 dimensions; at most 64"),
    "shape product overflows": ({"inputs": [tensor(shape=[2**40, 2**40, 2**40], data=[1])]}, b"", 422, "x",
                                "more elements than an array can hold"),
    "huge dim": ({"inputs": [tensor(shape=[2**70], data=[1])]}, b"", 422, "x", "more elements"),
    "huge dims of nothing": ({"inputs": [tensor(shape=[2**62, 2**62, 0], data=[])]}, b"", 422, "x",
                             "dimensions too large"),
    "huge binary shape": ({"inputs": [bin_tensor(shape=[2**62, 2**62], size=24)]}, F32x6, 422, "x",
                          "more elements"),
    "negative dim in binary": ({"inputs": [bin_tensor(shape=[-6], size=24)]}, F32x6, 422, "x", "negative"),
    "lone surrogate in name": (b'{"inputs": [{"name": "\\ud800", "shape": [1], "datatype": "FP32", '
                               b'"data": [1]}]}', b"", 400, None, "'inputs[0].name' is not valid Unicode"),
    "lone low surrogate in name": (b'{"inputs": [{"name": "a\\udfffb", "shape": [1], "datatype": "FP32", '
                                   b'"data": [1]}]}', b"", 400, None, "'inputs[0].name' is not valid Unicode"),
    "lone surrogate in id": (b'{"id": "\\ud800", "inputs": []}', b"", 400, None, "'id' is not valid Unicode"),
    "lone surrogate in output name": (b'{"inputs": [], "outputs": [{"name": "\\udbff"}]}', b"", 400, None,
                                      "'outputs[0].name' is not valid Unicode"),
    "lone surrogate in a key": (b'{"inputs": [], "parameters": {"\\ud800": 1}}', b"", 400, None,
                                "a key of 'parameters' is not valid Unicode"),
    "lone surrogate in bytes data": (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", '
                                     b'"data": ["\\ud800"]}]}', b"", 400, None, "'inputs[0].data[0]'"),
    "deep data": (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": ' + b"[" * 1000
                  + b"1" + b"]" * 1000 + b"}]}", b"", 400, None, "more than 64 levels deep"),
    "deep parameters": (b'{"parameters": {"p": ' + b'{"a": ' * 1000 + b"1" + b"}" * 1000 + b'}, "inputs": []}',
                        b"", 400, None, "more than 64 levels deep"),
    "deep unclosed": (b'{"inputs": ' + b"[" * 100_000, b"", 400, None, "more than 64 levels deep"),
    "deep outputs": (b'{"inputs": [], "outputs": [{"name": "o", "parameters": ' + b"[" * 70 + b"]" * 70 + b"}]}",
                     b"", 400, None, "more than 64 levels deep"),
}


@pytest.mark.parametrize("case", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request(case):
    doc, binary, status, name, detail = case
    if isinstance(doc, bytes):
        body, header_length = doc + binary, (len(doc) if binary else None)
    else:
        body, header_length = body_of(doc, binary)
    err = raises(body, header_length)
    assert (err.status, err.input) == (status, name), err.detail
    assert detail in err.detail
    if name is not None:
        assert f"'{name}'" in err.detail


def test_binary_data_without_header_length_is_truncated():
    body, _ = body_of({"inputs": [bin_tensor()]})
    err = raises(body)
    assert (err.status, err.input) == (400, "x")
    assert "binary_data_size 24 but only 0 bytes remain" in err.detail


@pytest.mark.parametrize(
    "header_length",
    [-1, 10_000, "abc", "15", "+14", "-0", " 14", "14 ", "1_4", "\uff11\uff14", "\u0661\u0664", "14\n", "",
     "0x0e", "1e1", True, 14.0, b"14", "9" * 25],
    ids=repr,
)
def test_bad_header_length(header_length):
    # Plain ASCII decimal digits, within the body: int() would take a sign, spaces, underscores, other digits.
    err = raises(b'{"inputs": []}', header_length)
    assert (err.status, err.input) == (400, None)
    assert HL in err.detail


@pytest.mark.parametrize("header_length", [14, "14", "014"])
def test_good_header_length(header_length):
    assert v2.decode_request(b'{"inputs": []}', header_length=header_length).inputs == []


def test_header_length_cuts_json():
    body, n = body_of({"inputs": [bin_tensor()]}, F32x6)
    err = raises(body, n - 1)  # header ends early: not valid JSON
    assert err.status == 400


def test_nesting_at_the_limit_is_accepted():
    # data nested 61 deep plus the envelope ({ inputs [ { data) is 64 levels: exactly MAX_JSON_DEPTH.
    shape = [1] * 61
    data = b"[" * 61 + b"7" + b"]" * 61
    body = b'{"inputs": [{"name": "x", "shape": ' + json.dumps(shape).encode() + b', "datatype": "INT32", "data": '
    req = v2.decode_request(body + data + b"}]}")
    assert req.inputs[0].data.shape == tuple(shape) and req.inputs[0].data.item() == 7
    err = raises(body + b"[" + data + b"]" + b"}]}")
    assert "more than 64 levels deep" in err.detail


def test_json_depth_ignores_brackets_in_strings():
    assert v2.json_depth(b'{"a": ["[[[[", {"b": "}}}\\"[["}]}') == 3
    assert v2.json_depth(b"") == 0
    assert not v2.json_too_deep(b'{"name": "' + b"[" * 500 + b'"}')
    assert v2.json_too_deep(b"[" * 65 + b"]" * 65)
    assert not v2.json_too_deep(b"[" * 64 + b"]" * 64)
    # a name full of brackets is a legal name
    name = "[" * 100
    body = json.dumps({"inputs": [tensor(name, [1], data=[1])]}).encode()
    assert v2.decode_request(body).inputs[0].name == name


def test_fp_inputs_keep_infinities_and_nan():
    # Triton's literals are deliberate: only numbers the datatype cannot hold are refused.
    body = b'{"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [NaN, Infinity, -Infinity]}]}'
    data = v2.decode_request(body).inputs[0].data
    assert np.isnan(data[0]) and data[1] == np.inf and data[2] == -np.inf


def test_valid_surrogate_pairs_are_text():
    body = b'{"id": "\\ud83d\\ude00", "parameters": {"n": NaN}, "inputs": []}'  # lenient path (NaN)
    assert v2.decode_request(body).id == "\U0001F600"
    assert v2.decode_request(b'{"id": "\\ud83d\\ude00", "inputs": []}').id == "\U0001F600"


def test_utf16_json_is_not_sniffed():
    # json.loads(bytes) would detect UTF-16; the wire format is UTF-8.
    err = raises('{"inputs": [], "x": NaN}'.encode("utf-16"))
    assert "not valid JSON" in err.detail


def test_one_datatype_table():
    from modelyard import bundles, datatypes, types

    assert v2.DATATYPES is datatypes.DATATYPES and types.DATATYPES is datatypes.DATATYPES
    for name in datatypes.DATATYPES:
        assert bundles.numpy_dtype(name) == v2.numpy_dtype(name)
        assert bundles.datatype_of(v2.numpy_dtype(name)) == v2.datatype_of(bundles.numpy_dtype(name)) == name
    with pytest.raises(ValueError, match="unknown datatype"):
        bundles.numpy_dtype("FP8")


def test_codec_error_is_an_exception_with_fields():
    err = CodecError("input 'x': boom", status=422, input="x")
    assert isinstance(err, Exception)
    assert str(err) == err.detail == "input 'x': boom"
    assert (err.status, err.input) == (422, "x")


# --------------------------------------------------------------------------------------------
# malformed responses, encoder errors
# --------------------------------------------------------------------------------------------


def test_response_error_object():
    err = raises(b'{"error": "model m is not ready"}', response=True)
    assert err.status == 502
    assert "model m is not ready" in err.detail


def test_response_missing_model_name_and_bad_output():
    err = raises(json.dumps({"outputs": []}).encode(), response=True)
    assert "model_name" in err.detail
    err = raises(json.dumps({"model_name": "m", "outputs": [tensor("y", data=[1])]}).encode(), response=True)
    assert (err.status, err.input) == (400, "y")
    assert err.detail.startswith("output 'y': shape [2, 3] needs 6 elements, got 1")


@pytest.mark.parametrize(
    ("value", "binary", "detail"),
    [
        (np.array([1j]), True, "complex"),
        (np.array([1, b"a"], dtype=object), True, "BYTES element 0 is a int"),
        (np.array([b"\xff"], dtype=object), False, "not valid UTF-8"),
    ],
)
def test_encode_errors(value, binary, detail):
    with pytest.raises(CodecError) as info:
        v2.encode_response(model_name="m", model_version=None, outputs={"y": value}, binary_outputs=binary)
    assert (info.value.status, info.value.input) == (500, "y")
    assert detail in info.value.detail
    with pytest.raises(CodecError):
        v2.encode_request({"y": value}, binary=binary)


# --------------------------------------------------------------------------------------------
# interoperability with NVIDIA's tritonclient
# --------------------------------------------------------------------------------------------


def _tritonclient():
    return pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed")


def _triton_request(httpclient, arrays, binary, outputs=None, **kwargs):
    inputs = []
    for name, arr in arrays.items():
        inp = httpclient.InferInput(name, list(arr.shape), v2.datatype_of(arr.dtype))
        inp.set_data_from_numpy(arr, binary_data=name in binary)
        inputs.append(inp)
    return httpclient.InferenceServerClient.generate_request_body(inputs, outputs=outputs, **kwargs)


@SETTINGS
@given(case=tensor_sets())
def test_tritonclient_request_decodes(case):
    httpclient = _tritonclient()
    arrays, binary = case
    outputs = [
        httpclient.InferRequestedOutput("out_b", binary_data=True),
        httpclient.InferRequestedOutput("out_j", binary_data=False),
    ]
    body, json_size = _triton_request(httpclient, arrays, binary, outputs=outputs, request_id="abc")
    req = v2.decode_request(body, header_length=json_size)
    assert req.id == "abc"
    for name, got in req.as_arrays().items():
        assert_same(got, arrays[name], exact=name in binary)
    assert list(req.as_arrays()) == list(arrays)
    assert req.binary_outputs() == frozenset({"out_b"})


def test_tritonclient_request_without_outputs_asks_for_binary():
    httpclient = _tritonclient()
    arrays = {"x": np.arange(4, dtype=np.int32), "s": np.array([b"a", b"bc"], dtype=object)}
    body, json_size = _triton_request(httpclient, arrays, {"x"}, parameters={"custom": "v"})
    req = v2.decode_request(body, header_length=json_size)
    assert req.outputs is None
    assert req.binary_outputs() is True
    assert req.parameters == {"binary_data_output": True, "custom": "v"}
    assert_same(req.as_arrays()["s"], arrays["s"])


def test_tritonclient_all_json_request_has_no_header_length():
    httpclient = _tritonclient()
    body, json_size = _triton_request(httpclient, {"x": np.array([1.5, np.nan], np.float16)}, set())
    assert json_size is None
    assert_same(v2.decode_request(body).as_arrays()["x"], np.array([1.5, np.nan], np.float16), exact=False)


def _triton_compare(got, want):
    if want.dtype == object:
        # tritonclient returns bytes from binary BYTES and str from JSON BYTES
        assert [x if isinstance(x, bytes) else x.encode() for x in got.flat] == list(want.flat)
        assert got.shape == want.shape
    else:
        assert_same(got, want, exact=False)


@SETTINGS
@given(case=tensor_sets())
def test_tritonclient_parses_binary_response(case):
    httpclient = _tritonclient()
    arrays, _ = case
    body, headers = v2.encode_response(
        model_name="m", model_version="1", outputs=arrays, request_id="r", binary_outputs=True
    )
    result = httpclient.InferenceServerClient.parse_response_body(body, header_length=int(headers[HL]))
    assert result.get_response()["id"] == "r"
    for name, want in arrays.items():
        got = result.as_numpy(name)
        _triton_compare(got, want)
        if want.dtype != object:
            assert got.tobytes() == want.tobytes()


@SETTINGS
@given(case=tensor_sets())
def test_tritonclient_parses_mixed_and_json_response(case):
    httpclient = _tritonclient()
    arrays, binary = case
    body, headers = v2.encode_response(
        model_name="m", model_version="1", outputs=arrays, binary_outputs=binary
    )
    header_length = int(headers[HL]) if HL in headers else None
    result = httpclient.InferenceServerClient.parse_response_body(body, header_length=header_length)
    for name, want in arrays.items():
        _triton_compare(result.as_numpy(name), want)


# --------------------------------------------------------------------------------------------
# fuzzing: only CodecError escapes the decoders, whatever the bytes and the header length
# --------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_NASTY_SCALARS = [b"1e400", b"-1e400", b"NaN", b"Infinity", b"-Infinity", b"1" + b"0" * 30, b"18446744073709551616",
                  b"-9223372036854775809", b"-0", b"1.5", b"true", b"null", b'"\\ud800"', b'"\\udc00x"',
                  b'"\\ud83d\\ude00"', b'"\xff"', b'"\xed\xa0\x80"', b'"x"', b'""', b"0", b"7", b"-1"]
_KEYS = [b'"inputs"', b'"outputs"', b'"name"', b'"shape"', b'"datatype"', b'"data"', b'"parameters"', b'"id"',
         b'"binary_data_size"', b'"binary_data"', b'"binary_data_output"', b'"model_name"', b'"x"']


def _json_texts():
    """JSON-ish documents built from V2 keys and the values that broke decoders: out-of-range numbers, lone
    surrogates, invalid UTF-8, NaN literals, deep nesting."""
    scalars = st.one_of(st.sampled_from(_NASTY_SCALARS), st.sampled_from(list(v2.DATATYPES)).map(
        lambda d: b'"' + d.encode() + b'"'), st.integers(-3, 2**64 + 1).map(lambda i: str(i).encode()))
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda xs: b"[" + b",".join(xs) + b"]"),
            st.lists(st.tuples(st.sampled_from(_KEYS), inner), max_size=5).map(
                lambda kv: b"{" + b",".join(k + b":" + v for k, v in kv) + b"}"),
            st.integers(60, 2000).map(lambda n: b"[" * n + b"]" * n),
        ),
        max_leaves=30,
    )


def _request_docs():
    """Requests close to valid, so that the fuzzer reaches the tensor decoding."""
    tensors = st.fixed_dictionaries(
        {"name": st.sampled_from([b'"x"', b'"y"', b'"\\ud800"']),
         "shape": st.lists(st.integers(-1, 2**63), max_size=4).map(lambda s: json.dumps(s).encode())
         | _json_texts(),
         "datatype": st.sampled_from([*v2.DATATYPES, "FP128"]).map(lambda d: b'"' + d.encode() + b'"')},
        optional={"data": _json_texts(),
                  "parameters": st.integers(-2, 64).map(lambda n: b'{"binary_data_size": %d}' % n) | _json_texts()},
    ).map(lambda t: b"{" + b",".join(b'"%s":%s' % (k.encode(), v) for k, v in t.items()) + b"}")
    return st.lists(tensors, max_size=3).map(lambda ts: b'{"inputs": [' + b",".join(ts) + b"]}")


_header_lengths = st.one_of(
    st.none(), st.integers(-(2**65), 2**65), st.integers(0, 300), st.text(max_size=8),
    st.text(alphabet="0123456789+-_ \uff11\u0661", max_size=6), st.booleans(), st.floats(),
)


def _decode_only_codec_errors(decode, body, header_length):
    try:
        decode(body, header_length=header_length)
    except CodecError as exc:
        assert exc.status in (400, 422, 502), exc
        assert isinstance(exc.detail, str) and exc.detail
        exc.detail.encode()  # the detail can be written in a UTF-8 answer


@FUZZ
@given(body=st.binary(max_size=400), header_length=_header_lengths)
def test_fuzz_decode_request_arbitrary_bytes(body, header_length):
    _decode_only_codec_errors(v2.decode_request, body, header_length)


@FUZZ
@given(header=_json_texts() | _request_docs(), tail=st.binary(max_size=64), header_length=_header_lengths,
       exact=st.booleans())
def test_fuzz_decode_request_json(header, tail, header_length, exact):
    body = header + tail
    _decode_only_codec_errors(v2.decode_request, body, len(header) if exact and tail else header_length)


@FUZZ
@given(header=_json_texts(), tail=st.binary(max_size=32), header_length=_header_lengths)
def test_fuzz_decode_response(header, tail, header_length):
    _decode_only_codec_errors(v2.decode_response, header + tail, header_length)
