"""Turning a :class:`~modelyard.hookspecs.runtime.BundleSource` into a loaded model, in whichever process runs it.

A ``BundleSource`` is plain data (DESIGN "plain data across processes"), so loading needs what the process has of
its own: the storage slot the artifact is fetched from, the builders that load each flavor, and a cache directory.
The Platform builds a :class:`BundleLoader` from exactly those (:meth:`BundleLoader.from_platform`) and hands it to
the runtime's factory as ``ctx.services["loader"]``; a worker process assembles a Platform from the same config and
gets the same loader — nothing is shipped but the record, as JSON through :mod:`modelyard.converter`.

Artifacts are checked against their sha256 on every load (DESIGN, security defaults): storage verifies what it
streams, and a copy already in the cache is re-hashed before it is trusted, since the cache is plain files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import structlog

from modelyard.errors import InvalidInput, Unavailable

if TYPE_CHECKING:
    from modelyard.hookspecs.builder import LoadedModel
    from modelyard.platform import Platform
    from modelyard.types import BundleSource

log = structlog.get_logger(__name__)

#: The locator scheme of the content-addressed storage slot: ``sha256:<hex digest>``.
SHA256 = "sha256:"


def locator_of(digest: str) -> str:
    """The storage locator of an artifact with this sha256 digest."""
    return SHA256 + digest


def file_matches(path: Path, digest: str) -> bool:
    """Whether a file's sha256 is ``digest`` (streamed, 1 MiB at a time)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest() == digest


@attrs.define(eq=False)
class BundleLoader:
    """Fetches bundles from this process's storage into a local cache and loads them with its builders.

    Thread-safe: two loads of one digest at once may both fetch it, and storage writes the file atomically, so
    either copy is whole. Implements :class:`~modelyard.hookspecs.runtime.Loader`.

    Attributes:
        storage: the storage slot's :class:`~modelyard.hookspecs.storage.ArtifactStore`.
        builders: flavor → builder, the builders this process has.
        cache_dir: where fetched artifacts are kept, one file per digest.
    """

    storage: Any
    builders: Mapping[str, Any]
    cache_dir: Path

    @classmethod
    def from_platform(cls, platform: Platform) -> BundleLoader:
        """The loader of an assembled (or assembling, past its builders) platform: its storage, its builders, its
        cache directory (``<data_dir>/cache``)."""
        return cls(platform.storage, platform.builders, platform.data_dir / "cache")

    def fetch(self, source: BundleSource) -> Path:
        """The verified artifact of ``source`` as a local file in the cache.

        Raises :class:`~modelyard.errors.Unavailable` for a locator this storage cannot resolve; storage errors
        (:class:`~modelyard.errors.NotFound`, :class:`~modelyard.errors.IntegrityError`, I/O errors) pass through.
        """
        digest = self._digest(source)
        target = self.cache_dir / digest
        # A cached copy is re-hashed before use: the cache is plain files anyone on the host could change.
        if target.exists() and not file_matches(target, digest):
            log.warning("cached artifact does not match its digest; fetching it again", path=str(target),
                        digest=digest)
            target.unlink()
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            self.storage.get(digest, target)
        return target

    def load(self, source: BundleSource, options: Mapping[str, Any] | None = None, *,
             path: Path | None = None) -> LoadedModel:
        """Load ``source`` through its flavor's builder (``options``: ``device``, thread counts, …), fetching it
        first unless ``path`` already holds the verified artifact."""
        builder = self.builders.get(source.flavor)
        if builder is None:
            raise InvalidInput(f"flavor {source.flavor!r} has no builder in this process; installed: "
                               f"{', '.join(sorted(self.builders)) or 'none'}", field="flavor")
        artifact = path if path is not None else self.fetch(source)
        signature = source.signature if (source.signature.inputs or source.signature.outputs) else None
        return builder.load(artifact, signature=signature, options=options)

    @staticmethod
    def _digest(source: BundleSource) -> str:
        locator = source.locator
        if not locator.startswith(SHA256) or locator[len(SHA256):] != source.digest:
            raise Unavailable(f"{source.model}:{source.version}: cannot resolve the storage locator {locator!r} "
                              f"(expected {locator_of(source.digest)!r})")
        return source.digest


__all__ = ["SHA256", "BundleLoader", "file_matches", "locator_of"]
