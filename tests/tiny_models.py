"""Tiny ONNX models the tests build, defined once (importable from every test directory: ``tests/`` is on the
path through its conftest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def linear_onnx(path: Path, scale: float = 2.0, *, n: int = 4, weights: np.ndarray | None = None) -> Path:
    """``y = x @ w`` with ``x`` FP32 ``[batch, n]``: ``w`` is ``scale`` times the identity unless given."""
    from onnx import TensorProto, helper, numpy_helper

    w = (np.eye(n, dtype=np.float32) * scale) if weights is None else np.asarray(weights, np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "lin",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", w.shape[1]])],
        initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    Path(path).write_bytes(model.SerializeToString())
    return Path(path)


def looping_onnx(path: Path, trips: int = 10**15) -> Path:
    """A valid ~300-byte ONNX model whose ``Loop`` runs ``trips`` times over an Identity body: with the default,
    a validation run never ends."""
    import onnx
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Identity", ["v_in"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body)], "hostile",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        initializer=[helper.make_tensor("trips", TensorProto.INT64, [], [trips]),
                     helper.make_tensor("cond", TensorProto.BOOL, [], [True])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)
