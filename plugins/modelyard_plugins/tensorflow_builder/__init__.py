"""The ``tensorflow`` builder: SavedModels, stored as one deterministic zip and served by their
``serving_default`` signature.

An upload is a SavedModel directory, a ``.zip`` of one, or an in-memory ``tf.Module`` / Keras model (saved at
build time). The artifact is the SavedModel zipped with sorted entries and fixed timestamps, so the same model
always has the same digest. A zip is expanded within ``[platform] max_archive_bytes`` and
``max_archive_entries``, counted on the bytes actually written. tensorflow is imported only when a model is built or loaded
(``pip install 'modelyard[tensorflow]'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from modelyard import hookimpl
from modelyard.providers import BuilderProvider, NoConfig, ProviderContext


def _factory(config: NoConfig, ctx: ProviderContext) -> Any:
    from modelyard.bundles import ArchiveLimits

    from modelyard_plugins.tensorflow_builder.builder import TensorflowBuilder

    platform_config = getattr(ctx.config, "platform", None)
    return TensorflowBuilder(archive_limits=ArchiveLimits.from_config(platform_config))


@hookimpl
def modelyard_builders() -> Iterator[BuilderProvider]:
    """Offer the ``tensorflow`` builder when tensorflow is installed."""
    yield BuilderProvider(name="tensorflow", factory=_factory, requires=("tensorflow",), extra="tensorflow",
                          description="TensorFlow SavedModels (serving_default signature)")
