"""Tiny models of every flavor for the over-HTTP flavor tests, each with the inputs to send, its framework's own
outputs for them and the V2 metadata the server should report; plus a uvicorn server on a real socket for any
config. ``flavor_models:make_mlp`` doubles as the module factory of a safetensors upload.

Heavy frameworks are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import numpy as np

START_TIMEOUT_S = 60.0
#: The TorchScript / safetensors uploads carry no dtypes or shapes; this is what a user would pass.
MLP_INPUT_SPEC = [{"name": "x", "datatype": "FP32", "shape": [-1, 4]},
                  {"name": "scale", "datatype": "FP32", "shape": [-1, 1]}]


@attrs.frozen(kw_only=True)
class FlavorCase:
    """One model to register and serve: what to upload, what to send, what must come back.

    ``expected`` is the framework's own answer to ``inputs`` (torch forward, the SavedModel's concrete function,
    sklearn's predict/predict_proba, onnxruntime); ``inputs_meta``/``outputs_meta`` are the V2 metadata entries
    (``{"name", "datatype", "shape"}``) the server must list; ``rtol``/``atol`` bound float differences between
    the framework and the served model.
    """

    flavor: str
    name: str
    source: Path
    inputs: Mapping[str, np.ndarray]
    expected: Mapping[str, np.ndarray]
    inputs_meta: list[dict[str, Any]]
    outputs_meta: list[dict[str, Any]]
    rtol: float = 1e-6
    atol: float = 0.0


def _meta(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape}


# ------------------------------------------------------------------------------------------------ onnx
def onnx_case(base: Path) -> FlavorCase:
    """The harness's 20-feature logistic regression, answered by onnxruntime itself."""
    from server_harness import build_logreg, ort_outputs

    path = build_logreg(base / "logreg.onnx")
    x = np.random.default_rng(3).normal(size=(6, 20)).astype(np.float32)
    return FlavorCase(flavor="onnx", name="flavor-onnx", source=path, inputs={"x": x}, expected=ort_outputs(path, x),
                      inputs_meta=[_meta("x", "FP32", [-1, 20])],
                      outputs_meta=[_meta("probability", "FP32", [-1, 1]), _meta("label", "INT64", [-1, 1])])


# ------------------------------------------------------------------------------------------------ torch
def make_mlp() -> Any:
    """A seeded 4 → 8 → 3 MLP taking ``(x, scale)`` and returning ``(logits * scale, x.sum(1))``, in eval mode."""
    import torch

    class TinyMLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = torch.nn.Linear(4, 8)
            self.out = torch.nn.Linear(8, 3)

        def forward(self, x: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.out(torch.relu(self.hidden(x))) * scale, x.sum(dim=1)

    torch.manual_seed(0)
    return TinyMLP().eval()


def torch_cases(base: Path) -> dict[str, FlavorCase]:
    """The MLP as a ``torch.export`` program (``export``), a TorchScript archive (``torchscript``) and safetensors
    weights (``safetensors``); the expected outputs are the module's own forward, named ``output_i`` as the torch
    flavor names a tuple's items."""
    import warnings

    import torch
    from safetensors.torch import save_file

    mlp = make_mlp()
    rng = np.random.default_rng(5)
    inputs = {"x": rng.normal(size=(5, 4)).astype(np.float32), "scale": rng.uniform(1, 2, (5, 1)).astype(np.float32)}
    with torch.inference_mode():
        logits, total = mlp(torch.from_numpy(inputs["x"]), torch.from_numpy(inputs["scale"]))
    expected = {"output_0": logits.numpy(), "output_1": total.numpy()}

    batch = torch.export.Dim("batch")
    program = torch.export.export(mlp, (torch.randn(3, 4), torch.ones(3, 1)), dynamic_shapes=({0: batch}, {0: batch}))
    torch.export.save(program, str(base / "mlp.pt2"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, and still what users ship
        torch.jit.save(torch.jit.script(mlp), str(base / "mlp.pt"))
    save_file(mlp.state_dict(), str(base / "mlp.safetensors"))

    common = {"inputs": inputs, "expected": expected, "rtol": 1e-5, "atol": 1e-6,
              "inputs_meta": [_meta(s["name"], s["datatype"], s["shape"]) for s in MLP_INPUT_SPEC],
              "outputs_meta": [_meta("output_0", "FP32", [-1, 3]), _meta("output_1", "FP32", [-1])]}
    return {kind: FlavorCase(flavor="torch", name=f"flavor-torch-{kind}", source=base / filename, **common)
            for kind, filename in (("export", "mlp.pt2"), ("torchscript", "mlp.pt"),
                                   ("safetensors", "mlp.safetensors"))}


# ------------------------------------------------------------------------------------------------ tensorflow
def tensorflow_case(base: Path) -> FlavorCase:
    """A SavedModel directory whose ``serving_default`` takes a float matrix ``x`` and a string vector ``s`` and
    returns ``y = x @ w`` and ``n = len(s)``; expected outputs come from the reloaded SavedModel's concrete
    function, i.e. what TensorFlow Serving would answer."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    class Scorer(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.random.stateless_normal([4, 3], seed=[1, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x"),
                                      tf.TensorSpec([None], tf.string, name="s")])
        def __call__(self, x: Any, s: Any) -> dict[str, Any]:
            return {"y": tf.matmul(x, self.w), "n": tf.strings.length(s)}

    scorer = Scorer()
    path = base / "scorer"
    tf.saved_model.save(scorer, str(path), signatures={"serving_default": scorer.__call__})
    inputs = {"x": np.random.default_rng(7).normal(size=(3, 4)).astype(np.float32),
              "s": np.array([b"ab", b"", "h\u00e9llo".encode()], dtype=object)}
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    result = fn(x=tf.constant(inputs["x"]), s=tf.constant(list(inputs["s"])))
    expected = {name: value.numpy() for name, value in result.items()}
    # A signature's tensors are protobuf maps, so the flavor lists them sorted by name.
    return FlavorCase(flavor="tensorflow", name="flavor-tensorflow", source=path, inputs=inputs, expected=expected,
                      inputs_meta=[_meta("s", "BYTES", [-1]), _meta("x", "FP32", [-1, 4])],
                      outputs_meta=[_meta("n", "INT32", [-1]), _meta("y", "FP32", [-1, 3])], rtol=1e-6)


# ------------------------------------------------------------------------------------------------ sklearn
def fit_logreg() -> Any:
    """A logistic regression fitted on a 20-feature toy problem."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 20)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).astype(np.int64)
    return LogisticRegression(max_iter=200).fit(x, y)


def sklearn_case(base: Path) -> FlavorCase:
    """The fitted estimator dumped with joblib (a pickle: needs ``allow_pickle``); expected outputs are its own
    ``predict`` and ``predict_proba`` (in float64, so the tolerance covers the float32 ONNX graph)."""
    import joblib

    estimator = fit_logreg()
    path = base / "logreg.joblib"
    joblib.dump(estimator, path)
    x = np.random.default_rng(1).normal(size=(6, 20)).astype(np.float32)
    return FlavorCase(flavor="sklearn", name="flavor-sklearn", source=path, inputs={"float_input": x},
                      expected={"label": estimator.predict(x), "probabilities": estimator.predict_proba(x)},
                      inputs_meta=[_meta("float_input", "FP32", [-1, 20])],
                      outputs_meta=[_meta("label", "INT64", [-1]), _meta("probabilities", "FP32", [-1, 2])],
                      rtol=1e-4, atol=1e-5)


class PickleBomb:
    """Unpickling this writes a marker file: proof of whether the server ever unpickled an upload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path.write_text, (self.marker, "unpickled"))


# ------------------------------------------------------------------------------------------------ server
@contextmanager
def running_server(config: Mapping[str, Any]) -> Iterator[str]:
    """A Platform from ``config`` behind ``create_app(dev=True)`` on uvicorn, in a background thread on a free
    127.0.0.1 port; yields the base URL and shuts both down afterwards. Every wait is bounded."""
    import uvicorn
    from modelyard import Platform
    from modelyard_plugins.server.app import create_app

    platform = Platform.from_config(dict(config))
    try:
        server = uvicorn.Server(uvicorn.Config(create_app(platform, dev=True), host="127.0.0.1", port=0,
                                               log_config=None, access_log=False, lifespan="on"))
        thread = threading.Thread(target=server.run, name="flavors-e2e-uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(timeout=30)
    finally:
        platform.close()
