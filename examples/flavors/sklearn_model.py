"""A scikit-learn pipeline through the platform: register → deploy → predict, checked against sklearn's output.

    python examples/flavors/sklearn_model.py

Needs ``pip install 'modelyard[sklearn]'``. The ``sklearn`` builder converts the fitted estimator object to ONNX
with skl2onnx (no pickle file is involved) and validates the converted model against the estimator's own
``predict`` and ``predict_proba`` before the version is recorded; serving runs onnxruntime, not scikit-learn.
The platform lives in a temporary directory, so the script leaves nothing behind.
"""

from __future__ import annotations

import tempfile

import numpy as np
from modelyard import Platform
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main() -> None:
    """Fit a small pipeline, take it through the platform and compare the served output with sklearn's."""
    x, y = make_classification(n_samples=200, n_features=6, random_state=0)
    x = x.astype(np.float32)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)

    with tempfile.TemporaryDirectory() as data_dir, \
            Platform.from_config({"platform": {"data_dir": data_dir, "log_level": "warning"}}) as platform:
        version = platform.registry.register("tiny-sklearn", pipeline, flavor="sklearn",
                                             sample_input={"float_input": x[:4]})
        outputs = [t.name for t in version.signature.outputs]
        print(f"registered {version.ref}: {version.metadata['estimator']} → ONNX outputs {outputs}; "
              f"validation compared {version.metadata['validation']['compared_outputs']}")
        platform.deploy(str(version.ref), name="tiny-sklearn")
        served = platform.predict("tiny-sklearn", {"float_input": x[:20]})

    np.testing.assert_array_equal(served["label"], pipeline.predict(x[:20]))
    np.testing.assert_allclose(served["probabilities"], pipeline.predict_proba(x[:20]), rtol=1e-4, atol=1e-5)
    print("served output matches scikit-learn (labels and probabilities) for 20 rows")


if __name__ == "__main__":
    main()
