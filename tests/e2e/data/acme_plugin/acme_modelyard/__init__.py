"""Acme's modelyard plugin: an ``acme`` storage provider keeping blobs as ``<root>/<aa>/<digest>`` files.

A test fixture for plugin discovery: it uses only the public plugin API (``modelyard.hookimpl`` and the provider
records), exactly as a third-party distribution would.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import attrs
from modelyard import hookimpl
from modelyard.errors import IntegrityError, NotFound
from modelyard.providers import StorageProvider
from modelyard.types import ArtifactRef


@attrs.frozen(kw_only=True)
class AcmeConfig:
    """``[storage]`` options of the acme provider."""

    root: str
    fsync: bool = False


class AcmeStore:
    """A content-addressed directory store."""

    def __init__(self, root: Path, fsync: bool) -> None:
        self.root = root
        self.fsync = fsync

    @classmethod
    def from_config(cls, config: AcmeConfig, ctx) -> AcmeStore:
        """Create the root directory and the store."""
        root = Path(config.root)
        root.mkdir(parents=True, exist_ok=True)
        return cls(root, config.fsync)

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def put(self, source) -> ArtifactRef:
        """Stream a file or binary stream in, hashing as it goes."""
        fh = open(source, "rb") if isinstance(source, str | os.PathLike) else source
        sha, size = hashlib.sha256(), 0
        with tempfile.NamedTemporaryFile(dir=self.root, delete=False) as tmp:
            while chunk := fh.read(1 << 16):
                sha.update(chunk)
                size += len(chunk)
                tmp.write(chunk)
        if fh is not source:
            fh.close()
        digest = sha.hexdigest()
        target = self._path(digest)
        target.parent.mkdir(exist_ok=True)
        os.replace(tmp.name, target)
        return ArtifactRef(digest=digest, size=size)

    def open(self, digest: str):
        """Open a blob (verified eagerly: fine for a fixture)."""
        path = self._path(digest)
        if not path.exists():
            raise NotFound(f"artifact {digest} not found")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise IntegrityError(f"artifact {digest} is corrupt")
        return path.open("rb")

    def get(self, digest: str, dest: Path) -> Path:
        """Copy a verified blob to ``dest``."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self.open(digest) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
        return dest

    def exists(self, digest: str) -> bool:
        """Whether the blob is stored."""
        return self._path(digest).exists()

    def size(self, digest: str) -> int:
        """The blob's size."""
        if not self.exists(digest):
            raise NotFound(f"artifact {digest} not found")
        return self._path(digest).stat().st_size

    def delete(self, digest: str) -> None:
        """Remove the blob if present."""
        self._path(digest).unlink(missing_ok=True)

    def list(self):
        """Every stored digest."""
        return (p.name for p in self.root.glob("??/*"))

    def close(self) -> None:
        """Nothing to release."""


@hookimpl
def modelyard_storages():
    """Offer the ``acme`` storage provider."""
    yield StorageProvider(name="acme", factory=AcmeStore.from_config, config_schema=AcmeConfig,
                          description="Acme content-addressed directory store")
