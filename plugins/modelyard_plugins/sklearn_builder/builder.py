"""Convert scikit-learn estimators to ONNX bundles, validated against the estimator's own predictions.

scikit-learn, skl2onnx and joblib are imported inside functions only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from modelyard.bundles import bounded_int, numpy_dtype
from modelyard.errors import BuildError
from modelyard.types import BuildOptions, BuiltBundle, Signature

from modelyard_plugins.onnx_builder.builder import OnnxModel, SessionSettings, build_onnx_bundle, load_onnx
from modelyard_plugins.sklearn_builder import MAX_FEATURES

if TYPE_CHECKING:
    from modelyard_plugins.sklearn_builder import SklearnConfig

DEFAULT_INPUT_NAME = "float_input"


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


class SklearnBuilder:
    """The ``sklearn`` flavor: skl2onnx conversion, served through the ``onnx`` flavor's loader."""

    flavor = "sklearn"

    def __init__(self, config: SklearnConfig) -> None:
        self.config = config
        self.settings = SessionSettings(intra_op_threads=config.intra_op_threads,
                                        inter_op_threads=config.inter_op_threads)

    # ------------------------------------------------------------------------------------------- source
    def _estimator(self, source: Any) -> tuple[Any, bool]:
        """The fitted estimator and whether a pickle was loaded to get it."""
        pickled = False
        if isinstance(source, str | Path):
            path = Path(source)
            if not self.config.allow_pickle:
                raise BuildError(
                    f"{path.name}: loading a pickle/joblib file executes arbitrary code, so modelyard refuses it by "
                    "default; if you trust the file, enable it with `[builders.sklearn] allow_pickle = true` in "
                    "modelyard.toml — or register the fitted estimator object itself (Python API), which needs "
                    "no pickle")
            if not path.is_file():
                raise BuildError(f"sklearn source {path.name!r} is not a file")
            import joblib

            try:
                source = joblib.load(path)  # also reads plain pickles
            except Exception as exc:
                raise BuildError(f"{path.name}: cannot load the pickle/joblib file: {type(exc).__name__}: "
                                 f"{exc}") from None
            pickled = True
        if not (hasattr(source, "fit") and (hasattr(source, "predict") or hasattr(source, "transform"))):
            raise BuildError(f"sklearn source must be a fitted scikit-learn estimator or pipeline, got "
                             f"{_qualname(source)}")
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(source)
        except NotFittedError:
            raise BuildError(f"the {type(source).__name__} estimator is not fitted; call fit() first") from None
        except TypeError as exc:
            raise BuildError(f"sklearn source is not an estimator: {exc}") from None
        return source, pickled

    # ------------------------------------------------------------------------------------------- conversion
    def _convert(self, estimator: Any, options: BuildOptions) -> Any:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
        from sklearn.base import is_classifier

        opts = options.options
        input_name = str(opts.get("input_name", DEFAULT_INPUT_NAME))
        if opts.get("n_features") is not None:
            bounded_int(opts["n_features"], field="n_features", low=1, high=MAX_FEATURES)
        n_features = opts.get("n_features") or getattr(estimator, "n_features_in_", None)
        if n_features is None and options.sample_input is not None and input_name in options.sample_input:
            n_features = np.asarray(options.sample_input[input_name]).shape[-1]
        if isinstance(n_features, bool) or not isinstance(n_features, int | np.integer) or n_features < 1:
            raise BuildError("the number of input features is unknown: pass options['n_features'] (the estimator "
                             "has no n_features_in_)")
        dtype = opts.get("dtype", "FP32")
        tensor_types = {"FP32": FloatTensorType, "FP64": DoubleTensorType}
        if dtype not in tensor_types:
            raise BuildError(f"options['dtype'] must be 'FP32' or 'FP64', got {dtype!r}")
        initial = [(input_name, tensor_types[dtype]([None, int(n_features)]))]
        # ZipMap would turn probabilities into a list of dicts; plain tensors are what V2 clients expect.
        conv_options = {"zipmap": False} if is_classifier(estimator) else None
        try:
            return to_onnx(estimator, initial_types=initial, options=conv_options,
                           target_opset=self.config.target_opset)
        except Exception as exc:
            raise BuildError(f"skl2onnx cannot convert {type(estimator).__name__}: {type(exc).__name__}: "
                             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None

    @staticmethod
    def _reference(estimator: Any, model: Any, options: BuildOptions) -> Any:
        """A function computing the estimator's own outputs, named as the ONNX graph names them."""
        from sklearn.base import is_classifier

        outputs = [o.name for o in model.graph.output]
        input_name = model.graph.input[0].name
        dtype = numpy_dtype("FP64" if model.graph.input[0].type.tensor_type.elem_type == 11 else "FP32")

        def reference(inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
            # Feed the estimator exactly what onnxruntime sees (same dtype), so differences are the model's.
            x = np.asarray(inputs[input_name]).astype(dtype)
            if is_classifier(estimator):
                ref = {outputs[0]: estimator.predict(x)}
                if len(outputs) > 1 and hasattr(estimator, "predict_proba"):
                    ref[outputs[1]] = estimator.predict_proba(x)
                return ref
            if hasattr(estimator, "predict"):
                return {outputs[0]: estimator.predict(x)}
            return {outputs[0]: estimator.transform(x)}

        return reference

    # ------------------------------------------------------------------------------------------- contract
    def build(self, source: Path | Any, *, options: BuildOptions, workdir: Path) -> BuiltBundle:
        """Convert the estimator to ONNX and check onnxruntime's outputs against the estimator's own."""
        import skl2onnx
        import sklearn

        estimator, pickled = self._estimator(source)
        model = self._convert(estimator, options)
        metadata = {"converted_from": "sklearn", "estimator": _qualname(estimator),
                    "sklearn_version": sklearn.__version__, "skl2onnx_version": skl2onnx.__version__,
                    "pickle_loaded": pickled}
        return build_onnx_bundle(model, None, options=options, workdir=workdir, settings=self.settings,
                                 flavor=self.flavor, reference=self._reference(estimator, model, options),
                                 metadata=metadata)

    def load(self, artifact: Path, *, signature: Signature | None,
             options: Mapping[str, Any] | None = None) -> OnnxModel:
        """Serve the converted model with onnxruntime (no scikit-learn, no pickle)."""
        return load_onnx(artifact, signature, self.settings.with_options(options))

    def close(self) -> None:
        """Nothing to release."""


__all__ = ["DEFAULT_INPUT_NAME", "SklearnBuilder"]
