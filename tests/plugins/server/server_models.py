"""Helpers for the server tests: a tiny real ONNX model (20-feature logistic regression with a probability and
a label output) built with ``onnx.helper``, and the expected answers computed by onnxruntime itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from modelyard import Platform

FEATURES = 20


def build_logreg(path: Path, seed: int = 0) -> Path:
    """Write ``probability = sigmoid(x @ w + b)`` (FP32 ``[N, 1]``) and ``label = logit > 0`` (INT64 ``[N, 1]``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(size=(FEATURES, 1)).astype(np.float32)
    b = np.array([0.25], dtype=np.float32)
    zero = np.array([0.0], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["logit"]),
         helper.make_node("Sigmoid", ["logit"], ["probability"]),
         helper.make_node("Greater", ["logit", "zero"], ["positive"]),
         helper.make_node("Cast", ["positive"], ["label"], to=TensorProto.INT64)],
        "logreg",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["N", 1])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
                     numpy_helper.from_array(zero, "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def ort_outputs(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """What onnxruntime itself answers for ``x``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"x": x}), strict=True))


def features(rows: int, seed: int = 1) -> np.ndarray:
    """``rows`` random feature rows as FP32."""
    return np.random.default_rng(seed).normal(size=(rows, FEATURES)).astype(np.float32)


def make_platform(data_dir: Path, **sections: Any) -> Platform:
    """A platform on the embedded defaults in ``data_dir``; ``sections`` are extra config sections."""
    return Platform.from_config({"platform": {"data_dir": str(data_dir), "log_level": "warning"}, **sections})
