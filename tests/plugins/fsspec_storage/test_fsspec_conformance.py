"""The storage conformance kit, run against the ``fsspec`` store on a local directory and on ``memory://``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from modelyard.testing.storage import StorageConformance
from modelyard_plugins.fsspec_storage.store import FsspecStore


class FsspecKit(StorageConformance):
    """What both runs share: how to damage a blob and where uploads in flight live."""

    def corrupt(self, store: FsspecStore, digest: str) -> None:
        """Flip the middle byte of the stored blob, keeping its size."""
        path = store.blob_path(digest)
        data = bytearray(store.fs.cat_file(path))
        data[len(data) // 2] ^= 0x5A
        store.fs.pipe_file(path, bytes(data))

    def temporary_objects(self, store: FsspecStore) -> list[str]:
        """Whatever is under ``<root>/tmp``."""
        tmp = f"{store.root}/tmp"
        return sorted(store.fs.find(tmp)) if store.fs.exists(tmp) else []


class TestLocalDirectory(FsspecKit):
    """The kit on ``file://`` in the test's temporary directory."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[FsspecStore]:
        """A store rooted in a fresh directory."""
        store = FsspecStore.from_url(f"file://{tmp_path / 'artifacts'}", chunk_size=self.chunk_size)
        yield store
        store.close()


class TestMemory(FsspecKit):
    """The kit on ``memory://`` under a root of its own per test (the memory filesystem is process-wide)."""

    # memory:// keeps every blob in RAM, so the bounded-memory check cannot apply; the large put still runs.
    large_put_memory_limit = None

    @pytest.fixture
    def store(self) -> Iterator[FsspecStore]:
        """A store under a unique memory:// root, removed afterwards."""
        url = f"memory://modelyard-test-{uuid.uuid4().hex}"
        store = FsspecStore.from_url(url, chunk_size=self.chunk_size)
        yield store
        store.close()
        fs = fsspec.filesystem("memory")
        if fs.exists(store.root):
            fs.rm(store.root, recursive=True)
