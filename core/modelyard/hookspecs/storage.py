"""The ``storage`` slot: content-addressed artifacts, streamed in and out, verified on read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from modelyard.hookspecs.markers import hookspec, renamed
from modelyard.providers import StorageProvider
from modelyard.types import ArtifactRef


@runtime_checkable
class ArtifactStore(Protocol):
    """What a storage provider promises.

    Blobs are addressed by the sha256 of their bytes. ``put`` streams (never reads a whole file into memory) and
    is atomic: a failure half-way leaves no blob under the digest. Every read verifies the digest and raises
    :class:`~modelyard.errors.IntegrityError` when the bytes changed.
    """

    def put(self, source: Path | IO[bytes]) -> ArtifactRef:
        """Store a file or a binary stream; returns its digest and size. Idempotent for identical bytes."""
        ...

    def open(self, digest: str) -> IO[bytes]:
        """A readable stream that verifies the digest when read to the end (raises IntegrityError then)."""
        ...

    def get(self, digest: str, dest: Path) -> Path:
        """Stream a blob into ``dest`` (a file path), verifying it; the file appears only once verified."""
        ...

    def exists(self, digest: str) -> bool:
        """Whether a blob is stored."""
        ...

    def size(self, digest: str) -> int:
        """A blob's size in bytes; NotFound if absent."""
        ...

    def delete(self, digest: str) -> None:
        """Remove a blob (no error if absent)."""
        ...

    def list(self) -> Iterator[str]:
        """Every stored digest."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


@hookspec
def modelyard_artifact_stores() -> Iterable[StorageProvider]:  # type: ignore[empty-body]
    """Offer artifact stores: the providers of the ``storage`` slot (``fsspec``, …).

    Called once per plugin manager, at assembly.

    Returns:
        An iterable of :class:`~modelyard.providers.StorageProvider`; the factory returns an
        :class:`ArtifactStore`.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_artifact_stores():
                yield StorageProvider(name="fsspec", factory=FsspecStore.from_config, config_schema=FsspecConfig)
    """


@hookspec(warn_on_impl=renamed("modelyard_storages", "modelyard_artifact_stores"))
def modelyard_storages() -> Iterable[StorageProvider]:  # type: ignore[empty-body]
    """Deprecated former name of :func:`modelyard_artifact_stores`; implement that instead.

    Called, and its results collected, exactly like :func:`modelyard_artifact_stores`, for one more release
    (it is removed in modelyard 0.3); registering a plugin that implements it emits a ``DeprecationWarning``
    naming the new hook.

    Returns:
        An iterable of :class:`~modelyard.providers.StorageProvider`; the factory returns an
        :class:`ArtifactStore`.

    All results are collected, together with those of :func:`modelyard_artifact_stores`.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_artifact_stores():  # rename the function; its body stays the same
                ...
    """
