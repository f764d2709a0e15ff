"""The ``builders`` slot: one builder per flavor turns an upload into a validated, immutable bundle."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from modelyard.hookspecs.markers import hookspec
from modelyard.providers import BuilderProvider
from modelyard.types import BuildOptions, BuiltBundle, Signature

if TYPE_CHECKING:
    import numpy as np


@runtime_checkable
class LoadedModel(Protocol):
    """A bundle loaded for serving. ``predict`` is thread-safe, takes and returns arrays with the batch on axis 0,
    and should release the GIL while the framework computes."""

    signature: Signature

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on named inputs; returns named outputs."""
        ...

    def close(self) -> None:
        """Free the model's memory (sessions, device buffers)."""
        ...


@runtime_checkable
class Builder(Protocol):
    """What a builder provider promises for its flavor."""

    flavor: str

    def build(self, source: Path | Any, *, options: BuildOptions, workdir: Path) -> BuiltBundle:
        """Turn ``source`` (a path, or for some flavors an in-memory model object) into a validated bundle.

        Raises :class:`~modelyard.errors.BuildError` naming the reason when the upload cannot be loaded, its
        signature cannot be determined, or validation fails. Writes only inside ``workdir``.
        """
        ...

    def load(self, artifact: Path, *, signature: Signature, options: Mapping[str, Any] | None = None) -> LoadedModel:
        """Load a bundle's artifact for serving (``options`` may carry ``device``, thread counts, …)."""
        ...


@hookspec
def modelyard_builders() -> Iterable[BuilderProvider]:  # type: ignore[empty-body]
    """Offer builders, one per flavor (``onnx``, ``torch``, ``tensorflow``, ``sklearn``, …).

    Called once per plugin manager, at assembly. Every installed builder whose requirements are present is
    enabled unless ``[builders] enabled = ["onnx", …]`` in config lists a subset (then only those);
    ``[builders.<flavor>]`` holds its options.

    Returns:
        An iterable of :class:`~modelyard.providers.BuilderProvider` named by flavor; the factory returns a
        :class:`Builder`.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_builders():
                yield BuilderProvider(name="onnx", factory=lambda cfg, ctx: OnnxBuilder(cfg))
    """
