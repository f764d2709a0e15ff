"""Helpers for the local runtime tests: tiny real ONNX models (``y = x @ W + b``, 20 features) served by
onnxruntime, and :class:`BundleSource` records that load them.

The models are built once per session with ``onnx.helper``. The ``onnx`` builder plugin is not used here so that
these tests exercise the runtime alone; the platform-level test goes through the real builder when it exists.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from modelyard.types import BundleSource, Deployment, Signature, TensorSpec

FEATURES = 20
OUTPUTS = 3
SIGNATURE = Signature((TensorSpec("x", "FP32", (-1, FEATURES)),), (TensorSpec("y", "FP32", (-1, OUTPUTS)),))


def weights(version: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct weights per version, so every output shows which version computed it."""
    rng = np.random.default_rng(version)
    return (rng.normal(size=(FEATURES, OUTPUTS)).astype(np.float32),
            np.full(OUTPUTS, 100.0 * version, dtype=np.float32))


def expected(version: int, x: np.ndarray) -> np.ndarray:
    """What version ``version`` answers for ``x``."""
    w, b = weights(version)
    return x @ w + b


def build_onnx(path: Path, version: int) -> Path:
    """Write ``y = x @ W + b`` as an ONNX file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w, b = weights(version)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", OUTPUTS])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


class OrtModel:
    """A :class:`~modelyard.hookspecs.builder.LoadedModel` over an onnxruntime session.

    Records the row count of every call and fails loudly when used after ``close`` (which is how the tests catch
    a runtime closing a model that is still serving). ``gate``/``sleep`` slow calls down for queueing tests.
    """

    def __init__(self, path: Path, *, gate: threading.Event | None = None, sleep: float = 0.0,
                 fail: bool = False) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.signature = SIGNATURE
        self.gate = gate
        self.sleep = sleep
        self.fail = fail
        self.calls: list[int] = []
        self.closed = False
        self._lock = threading.Lock()

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.closed:
            raise RuntimeError("predict() on a closed model")
        with self._lock:
            self.calls.append(len(inputs["x"]))
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        if self.sleep:
            time.sleep(self.sleep)
        if self.fail:
            raise ValueError("this model cannot predict")
        (y,) = self.session.run(None, {"x": inputs["x"]})
        if self.closed:
            raise RuntimeError("model closed while predicting")
        return {"y": y}

    def close(self) -> None:
        self.closed = True


@attrs.define
class SourceFactory:
    """Builds plain :class:`BundleSource` records for the session's ONNX files, and is the runtime's loader for
    them (:class:`~modelyard.hookspecs.runtime.Loader`).

    Each record gets a digest of its own, under which the factory remembers how that source should behave when it
    is fetched and loaded (errors, delays, a gated or failing model); ``loaded`` lists every model it loaded and
    ``loads`` the (version, options) of each load.
    """

    paths: dict[int, Path]
    loaded: list[OrtModel] = attrs.Factory(list)
    loads: list[tuple[int, Mapping[str, Any]]] = attrs.Factory(list)
    behaviours: dict[str, dict[str, Any]] = attrs.Factory(dict)

    def __call__(self, version: int = 1, *, model: str = "linear", size: int | None = None,
                 load_error: Exception | None = None, fetch_error: Exception | None = None,
                 load_delay: float = 0.0, **model_kwargs: Any) -> BundleSource:
        path = self.paths[version]
        digest = f"{version:08x}{len(self.behaviours) + 1:056x}"
        self.behaviours[digest] = {"version": version, "load_error": load_error, "fetch_error": fetch_error,
                                   "load_delay": load_delay, "model_kwargs": model_kwargs}
        return BundleSource(model=model, version=version, flavor="onnx", digest=digest,
                            size=path.stat().st_size if size is None else size, signature=SIGNATURE,
                            locator=f"sha256:{digest}")

    def fetch(self, source: BundleSource) -> Path:
        behaviour = self.behaviours[source.digest]
        if behaviour["fetch_error"] is not None:
            raise behaviour["fetch_error"]
        return self.paths[behaviour["version"]]

    def load(self, source: BundleSource, options: Mapping[str, Any] | None = None, *,
             path: Path | None = None) -> OrtModel:
        behaviour = self.behaviours[source.digest]
        self.loads.append((behaviour["version"], dict(options or {})))
        if behaviour["load_delay"]:
            time.sleep(behaviour["load_delay"])
        if behaviour["load_error"] is not None:
            raise behaviour["load_error"]
        m = OrtModel(path if path is not None else self.fetch(source), **behaviour["model_kwargs"])
        self.loaded.append(m)
        return m


def deployment(name: str = "linear", version: int = 1, *, model: str = "linear", **kwargs: Any) -> Deployment:
    """A deployment record for the local runtime."""
    return Deployment(name=name, model=model, version=version, runtime="local", **kwargs)


def rows(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random rows of features."""
    return np.random.default_rng(seed).normal(size=(n, FEATURES)).astype(np.float32)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.002)
