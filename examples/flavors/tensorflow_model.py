"""A TensorFlow model through the platform: register → deploy → predict, checked against TensorFlow's output.

    python examples/flavors/tensorflow_model.py

Needs ``pip install 'modelyard[tensorflow]'``. The ``tensorflow`` builder saves the in-memory ``tf.Module`` as a
SavedModel, zips it deterministically (same model, same digest), reads the ``serving_default`` signature and
validates it on the sample input before the version is recorded. The platform lives in a temporary directory, so
the script leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before tensorflow is imported: keep its C++ logging quiet

import numpy as np
import tensorflow as tf
from modelyard import Platform

N_FEATURES = 4


class TinyRegressor(tf.Module):
    """A linear layer with a tanh. Its one ``tf.function`` with an ``input_signature`` becomes the SavedModel's
    ``serving_default`` signature; the names in it (``features``, ``scores``) are what V2 clients see."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        self.w = tf.Variable(rng.normal(size=(N_FEATURES, 2)).astype(np.float32))
        self.b = tf.Variable(np.array([0.1, -0.2], dtype=np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, N_FEATURES], tf.float32, name="features")])
    def __call__(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
        """Scores for a batch of feature rows, as a dict of named outputs."""
        return {"scores": tf.tanh(tf.matmul(features, self.w) + self.b)}


def main() -> None:
    """Build the module, take it through the platform and compare the served output with TensorFlow's."""
    module = TinyRegressor()
    x = np.random.default_rng(1).normal(size=(6, N_FEATURES)).astype(np.float32)
    expected = module(tf.constant(x))["scores"].numpy()

    with tempfile.TemporaryDirectory() as data_dir, \
            Platform.from_config({"platform": {"data_dir": data_dir, "log_level": "warning"}}) as platform:
        version = platform.registry.register("tiny-tf", module, flavor="tensorflow",
                                             sample_input={"features": x[:2]},
                                             expected_output={"scores": expected[:2]})
        print(f"registered {version.ref} ({version.metadata['format']}, {version.artifact.size} bytes): "
              f"signature {version.signature.to_dict()}")
        platform.deploy(str(version.ref), name="tiny-tf")
        served = platform.predict("tiny-tf", {"features": x})["scores"]

    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)
    print(f"served output matches TensorFlow for {len(x)} rows")


if __name__ == "__main__":
    main()
