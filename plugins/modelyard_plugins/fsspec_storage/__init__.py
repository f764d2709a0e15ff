"""The embedded default of the ``storage`` slot: content-addressed artifacts on any fsspec filesystem.

``[storage] use = "fsspec"`` keeps blobs under ``file://<data_dir>/artifacts`` unless ``url`` names another root —
``memory://…`` for tests, ``s3://bucket/prefix`` with ``pip install 'modelyard[s3]'``, or any fsspec protocol.
See :mod:`modelyard_plugins.fsspec_storage.store` for the layout and guarantees. Registered through the
``modelyard`` entry-point group like any third-party plugin.
"""

from __future__ import annotations

from collections.abc import Iterator

from modelyard import hookimpl
from modelyard.providers import StorageProvider

from modelyard_plugins.fsspec_storage.store import FsspecConfig, FsspecStore


@hookimpl
def modelyard_storages() -> Iterator[StorageProvider]:
    """Offer the ``fsspec`` storage: sha256-addressed blobs, streamed in and out, verified on read."""
    yield StorageProvider(name="fsspec", factory=FsspecStore.from_config, config_schema=FsspecConfig,
                          description="content-addressed blobs on any fsspec URL (local directory by default)")


__all__ = ["FsspecConfig", "FsspecStore"]
