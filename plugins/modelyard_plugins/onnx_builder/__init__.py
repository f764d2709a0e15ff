"""The ``onnx`` builder: the embedded default flavor, served through onnxruntime.

An upload is one ``.onnx`` file (external-data models are folded into a single file); the builder checks it with
``onnx.checker``, reads the signature from the graph and validates the bundle by running it in the same
onnxruntime session configuration that serving uses. ``[builders.onnx]`` sets the session's threads and
execution providers. onnx and onnxruntime are imported only when a model is built or loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
from modelyard import hookimpl
from modelyard.bundles import int_range, max_threads
from modelyard.providers import BuilderProvider, ProviderContext


@attrs.frozen(kw_only=True)
class OnnxConfig:
    """Options of the ``onnx`` builder (``[builders.onnx]``), applied to every onnxruntime session it loads.

    ``providers`` lists onnxruntime execution providers in order of preference (e.g.
    ``["CUDAExecutionProvider"]``); those not available in the installed onnxruntime are skipped and the CPU
    provider is always the last resort. One intra-op thread per session suits a server that runs many requests
    concurrently; raise it for big models served one request at a time. Thread counts go from 0
    (onnxruntime's default) to :func:`~modelyard.bundles.max_threads` (four per CPU, at most 256).
    """

    intra_op_threads: int = attrs.field(default=1, validator=int_range(0, max_threads))
    inter_op_threads: int = attrs.field(default=1, validator=int_range(0, max_threads))
    providers: list[str] = attrs.field(factory=list)


def _factory(config: OnnxConfig, ctx: ProviderContext) -> Any:
    from modelyard_plugins.onnx_builder.builder import OnnxBuilder

    return OnnxBuilder(config)


@hookimpl
def modelyard_builders() -> Iterator[BuilderProvider]:
    """Offer the ``onnx`` builder (onnx and onnxruntime are core dependencies)."""
    yield BuilderProvider(name="onnx", factory=_factory, config_schema=OnnxConfig,
                          requires=("onnx", "onnxruntime"), extra=None,
                          description="ONNX models served by onnxruntime")


__all__ = ["OnnxConfig"]
