"""Session-scoped tiny models for the builder tests: built once, shared by every test (the machine is small)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builder_models import make_mlp, make_tf_module, save_tf_module, training_data


@pytest.fixture(scope="session")
def logreg() -> Any:
    """A fitted 20-feature logistic regression."""
    from sklearn.linear_model import LogisticRegression

    x, y = training_data()
    return LogisticRegression(max_iter=200).fit(x, y)


@pytest.fixture(scope="session")
def rows() -> np.ndarray:
    """Held-out float32 rows for the 20-feature models."""
    return training_data(16, seed=1)[0]


@pytest.fixture(scope="session")
def logreg_onnx(logreg: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The logistic regression exported by skl2onnx (no ZipMap) to an .onnx file."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    model = to_onnx(logreg, initial_types=[("float_input", FloatTensorType([None, 20]))],
                    options={"zipmap": False})
    path = tmp_path_factory.mktemp("onnx") / "logreg.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="session")
def mlp() -> Any:
    """The tiny two-input torch MLP, seeded and in eval mode."""
    import torch

    torch.manual_seed(0)
    return make_mlp().eval()


@pytest.fixture(scope="session")
def mlp_inputs() -> dict[str, np.ndarray]:
    """Five rows for the MLP."""
    rng = np.random.default_rng(3)
    return {"x": rng.normal(size=(5, 4)).astype(np.float32), "scale": rng.uniform(1, 2, (5, 1)).astype(np.float32)}


@pytest.fixture(scope="session")
def mlp_files(mlp: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The MLP saved as TorchScript, as a torch.export program, as safetensors weights and as a torch.save pickle."""
    import warnings

    import torch
    from safetensors.torch import save_file

    base = tmp_path_factory.mktemp("torch")
    files = {"torchscript": base / "mlp.pt", "export": base / "mlp.pt2", "safetensors": base / "mlp.safetensors",
             "pickle": base / "mlp.pth"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(mlp), str(files["torchscript"]))
    batch = torch.export.Dim("batch")
    example = (torch.randn(3, 4), torch.ones(3, 1))
    program = torch.export.export(mlp, example, dynamic_shapes=({0: batch}, {0: batch}))
    torch.export.save(program, str(files["export"]))
    save_file(mlp.state_dict(), str(files["safetensors"]))
    torch.save(mlp.state_dict(), str(files["pickle"]))  # a classic .pth: a pickle
    return files


@pytest.fixture(scope="session")
def tf() -> Any:
    """tensorflow, or a skip when it cannot be imported."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow
    except Exception as exc:  # ImportError, or a broken native library
        pytest.skip(f"tensorflow is not importable: {exc}")
    return tensorflow


@pytest.fixture(scope="session")
def tf_module(tf: Any) -> Any:
    """The tiny tf.Module (float matrix and string inputs)."""
    return make_tf_module()


@pytest.fixture(scope="session")
def savedmodel(tf_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tf.Module saved as a SavedModel directory."""
    return save_tf_module(tf_module, tmp_path_factory.mktemp("tf") / "scorer")


@pytest.fixture(scope="session")
def tf_bundle(savedmodel: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The SavedModel built once by the tensorflow builder (a BuiltBundle)."""
    from modelyard.types import BuildOptions
    from modelyard_plugins.tensorflow_builder.builder import TensorflowBuilder

    return TensorflowBuilder().build(savedmodel, options=BuildOptions(), workdir=tmp_path_factory.mktemp("tfb"))
