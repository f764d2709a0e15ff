"""The ``sklearn`` builder: scikit-learn estimators converted to ONNX at build time and served by onnxruntime.

An upload is a fitted estimator or pipeline object (no pickle involved) or, only when ``[builders.sklearn]
allow_pickle = true``, a pickle/joblib file: unpickling runs code, so it is off by default and every bundle built
from one is flagged ``pickle_loaded`` for the audit log. Serving never unpickles anything. scikit-learn and
skl2onnx are imported only when a model is built (``pip install 'modelyard[sklearn]'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
from modelyard import hookimpl
from modelyard.bundles import int_range, max_threads
from modelyard.providers import BuilderProvider, ProviderContext

#: The highest ONNX opset ``target_opset`` may name (onnx is at 2x today; the bound only refuses nonsense).
MAX_OPSET = 99
#: The most input features ``options["n_features"]`` may declare (validation generates a row of them).
MAX_FEATURES = 1 << 24


@attrs.frozen(kw_only=True)
class SklearnConfig:
    """Options of the ``sklearn`` builder (``[builders.sklearn]``).

    ``allow_pickle`` lets registrations load pickle/joblib files — only turn it on for files you trust.
    ``target_opset`` pins the ONNX opset skl2onnx converts to (its newest supported one when unset). The thread
    counts apply to the onnxruntime sessions that serve the converted models, as for the ``onnx`` flavor (0 to
    four per CPU, at most 256).
    """

    allow_pickle: bool = False
    target_opset: int | None = attrs.field(default=None, validator=attrs.validators.optional(
        int_range(1, MAX_OPSET)))
    intra_op_threads: int = attrs.field(default=1, validator=int_range(0, max_threads))
    inter_op_threads: int = attrs.field(default=1, validator=int_range(0, max_threads))


def _factory(config: SklearnConfig, ctx: ProviderContext) -> Any:
    from modelyard_plugins.sklearn_builder.builder import SklearnBuilder

    return SklearnBuilder(config)


@hookimpl
def modelyard_builders() -> Iterator[BuilderProvider]:
    """Offer the ``sklearn`` builder when scikit-learn and skl2onnx are installed."""
    yield BuilderProvider(name="sklearn", factory=_factory, config_schema=SklearnConfig,
                          requires=("sklearn", "skl2onnx"), extra="sklearn",
                          description="scikit-learn estimators, converted to ONNX")


__all__ = ["MAX_FEATURES", "MAX_OPSET", "SklearnConfig"]
