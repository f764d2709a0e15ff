"""Tiny models for the builder tests, importable by name (``builder_models:make_mlp`` is a module factory).

Heavy frameworks are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

N_FEATURES = 20
MiB = 1 << 20


def training_data(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 20-feature binary classification problem, float32."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).astype(np.int64)
    return x, y


def make_mlp() -> Any:
    """A 4 → 8 → 3 MLP taking ``(x, scale)`` and returning ``(logits, x.sum(1))``: two inputs, two outputs."""
    import torch

    class TinyMLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = torch.nn.Linear(4, 8)
            self.out = torch.nn.Linear(8, 3)

        def forward(self, x: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.out(torch.relu(self.hidden(x))) * scale, x.sum(dim=1)

    return TinyMLP()


def make_wide_mlp() -> Any:
    """An MLP whose layer sizes do not fit :func:`make_mlp`'s weights."""
    import torch

    class Wide(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = torch.nn.Linear(4, 16)
            self.out = torch.nn.Linear(16, 3)

        def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
            return self.out(self.hidden(x)) * scale

    return Wide()


def make_tf_module() -> Any:
    """A tf.Module with a ``serving_default`` over a float matrix and a string vector."""
    import tensorflow as tf

    class Scorer(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.random.stateless_normal([4, 3], seed=[1, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x"),
                                      tf.TensorSpec([None], tf.string, name="s")])
        def __call__(self, x: Any, s: Any) -> dict[str, Any]:
            return {"y": tf.matmul(x, self.w), "n": tf.strings.length(s)}

    return Scorer()


def save_tf_module(module: Any, path: Path) -> Path:
    """Save ``module`` as a SavedModel whose ``serving_default`` is its ``__call__``."""
    import tensorflow as tf

    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    return path


class PickleBomb:
    """Unpickling this writes a marker file: proof of whether a pickle was ever loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path.write_text, (self.marker, "unpickled"))


def zip_bomb(path: Path, size: int = 20 * MiB, *, name: str = "saved_model.pb") -> Path:
    """A zip of one deflated entry of ``size`` zero bytes (20 MiB compress to about 20 KiB)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr(name, bytes(size))
    return path


def understate_sizes(path: Path, claimed: int) -> Path:
    """Rewrite every entry's uncompressed size, in the local and the central headers, to ``claimed``: a zip
    whose headers lie, so that only counting the bytes actually written can tell how big it is."""
    data = bytearray(path.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (at := data.find(sig, start)) >= 0:
            data[at + offset:at + offset + 4] = claimed.to_bytes(4, "little")
            start = at + 4
    path.write_bytes(bytes(data))
    return path
