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


def check_config(config: FsspecConfig) -> Iterator[tuple[str | None, str]]:
    """Static check for ``modelyard check``: the URL's protocol is known to fsspec and its package is installed.
    Opens nothing."""
    if config.url is None:
        return
    import importlib.util

    import fsspec
    from fsspec.registry import known_implementations

    protocol = fsspec.utils.get_protocol(config.url)
    if protocol in ("file", "local", "memory"):
        return
    impl = known_implementations.get(protocol)
    if impl is None:
        yield "url", f"{protocol!r} is not an fsspec protocol; known ones include file, memory, s3, gcs, abfs, http"
        return
    package = impl["class"].split(".")[0]
    try:
        missing = importlib.util.find_spec(package) is None
    except (ImportError, ValueError):  # a module blocked in sys.modules (None) or a broken package
        missing = True
    if missing:
        hint = "pip install 'modelyard[s3]'" if protocol in ("s3", "s3a") else f"pip install {package}"
        yield "url", f"the {protocol!r} protocol needs {package}, which is not installed: {hint}"


@hookimpl
def modelyard_artifact_stores() -> Iterator[StorageProvider]:
    """Offer the ``fsspec`` storage: sha256-addressed blobs, streamed in and out, verified on read."""
    yield StorageProvider(name="fsspec", factory=FsspecStore.from_config, config_schema=FsspecConfig,
                          description="content-addressed blobs on any fsspec URL (local directory by default)",
                          check=check_config)


__all__ = ["FsspecConfig", "FsspecStore"]
