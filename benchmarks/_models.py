"""The benchmark's models, built in the run: the quickstart's churn model and a deep, narrow MLP.

* ``churn`` — the quickstart's 20-feature logistic regression (``examples/quickstart/build_model.py``): a ~20 µs
  onnxruntime call, so serving it measures the server's own per-request cost.
* ``deep`` — 20 features through ``depth`` hidden ``width``-wide Gemm+ReLU layers to one sigmoid output. Narrow
  layers keep the per-row arithmetic tiny while the thousands of sequential operators make one call cost about a
  millisecond whatever its row count: the "per-call cost dominates" model the batching target is stated for
  (a wide MLP such as 20→1024→1024→1 is not one: on this CPU it costs ~0.13 ms for one row and ~44 µs per row at
  64 rows, so batching cannot save much of it).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

__all__ = ["N_FEATURES", "build_churn", "build_deep", "call_cost_ms", "v2_body"]

N_FEATURES = 20
_QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart" / "build_model.py"


def build_churn(path: Path) -> Path:
    """Write the quickstart's churn model (same bytes as the example's) to ``path``."""
    spec = importlib.util.spec_from_file_location("quickstart_build_model", _QUICKSTART)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(path)


def build_deep(path: Path, *, width: int = 16, depth: int = 1500, seed: int = 0) -> Path:
    """Write the deep narrow MLP (``probability`` = sigmoid of the last layer, FP32 [batch, 1]) to ``path``."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes, current, fan_in = [], [], "float_input", N_FEATURES
    for i in range(depth):
        # He initialisation keeps activations finite through thousands of ReLU layers.
        w = (rng.normal(size=(fan_in, width)) * np.sqrt(2 / fan_in)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(width, np.float32), f"b{i}")]
        nodes += [helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [f"h{i}"]),
                  helper.make_node("Relu", [f"h{i}"], [f"r{i}"])]
        current, fan_in = f"r{i}", width
    w_out = (rng.normal(size=(fan_in, 1)) / np.sqrt(fan_in)).astype(np.float32)
    inits += [numpy_helper.from_array(w_out, "w_out"), numpy_helper.from_array(np.zeros(1, np.float32), "b_out")]
    nodes += [helper.make_node("Gemm", [current, "w_out", "b_out"], ["logit"]),
              helper.make_node("Sigmoid", ["logit"], ["probability"])]
    graph = helper.make_graph(
        nodes, "deep_mlp",
        [helper.make_tensor_value_info("float_input", TensorProto.FLOAT, ["batch", N_FEATURES])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="modelyard-bench")
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def call_cost_ms(path: Path, rows: int, *, repeat: int = 50) -> float:
    """Median milliseconds of one in-process onnxruntime call with ``rows`` rows (one intra-op thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(rows, N_FEATURES)).astype(np.float32)
    for _ in range(5):
        session.run(None, {"float_input": x})
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        session.run(None, {"float_input": x})
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1000


def v2_body(rows: int = 1, seed: int = 7) -> dict:
    """A V2 JSON inference request with ``rows`` rows of ``float_input``."""
    x = np.random.default_rng(seed).normal(size=(rows, N_FEATURES)).astype(np.float32)
    return {"inputs": [{"name": "float_input", "shape": [rows, N_FEATURES], "datatype": "FP32",
                        "data": [round(float(v), 4) for v in x.ravel()]}]}
