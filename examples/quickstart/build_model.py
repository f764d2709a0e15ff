"""Train the quickstart's example model — a 20-feature churn classifier — and save it as ONNX.

Pure numpy logistic regression on synthetic data, exported with ``onnx.helper`` so the quickstart needs nothing
beyond the core install. Outputs: ``probability`` (FP32, [batch, 1]) and ``label`` (INT64, [batch, 1]).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

N_FEATURES = 20


def train(seed: int = 0, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Fit weights and bias by gradient descent on synthetic data with a known linear rule."""
    rng = np.random.default_rng(seed)
    true_w = rng.normal(size=N_FEATURES)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    y = (x @ true_w + rng.normal(scale=0.5, size=n) > 0).astype(np.float32)
    w = np.zeros(N_FEATURES, dtype=np.float64)
    b = 0.0
    for _ in range(300):
        p = 1 / (1 + np.exp(-(x @ w + b)))
        w -= 0.5 * x.T @ (p - y) / n
        b -= 0.5 * float(np.mean(p - y))
    return w.astype(np.float32).reshape(N_FEATURES, 1), np.array([b], dtype=np.float32)


def to_onnx(w: np.ndarray, b: np.ndarray) -> onnx.ModelProto:
    """probability = sigmoid(x @ w + b); label = probability > 0.5."""
    nodes = [
        helper.make_node("MatMul", ["float_input", "w"], ["logit0"]),
        helper.make_node("Add", ["logit0", "b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
        helper.make_node("Greater", ["probability", "half"], ["is_churn"]),
        helper.make_node("Cast", ["is_churn"], ["label"], to=TensorProto.INT64),
    ]
    graph = helper.make_graph(
        nodes, "churn",
        [helper.make_tensor_value_info("float_input", TensorProto.FLOAT, ["batch", N_FEATURES])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["batch", 1])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
                     numpy_helper.from_array(np.array([0.5], dtype=np.float32), "half")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="modelyard-quickstart")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build(path: Path) -> Path:
    """Write the model to ``path`` (deterministic: same bytes every time)."""
    w, b = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_onnx(w, b).SerializeToString())
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", nargs="?", default=str(Path(__file__).with_name("churn.onnx")))
    print(build(Path(parser.parse_args().out)))
