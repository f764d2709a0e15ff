"""Conformance kit for the ``storage`` slot: the tests every artifact store must pass.

A storage plugin's test module subclasses :class:`StorageConformance`, provides a ``store`` fixture and says how
to damage a stored blob; pytest then runs every check below against it::

    # tests/test_my_storage.py
    import pytest
    from modelyard.testing.storage import StorageConformance

    from my_plugin.store import MyStore


    class TestMyStore(StorageConformance):
        chunk_size = 4096                      # the kit's sizes are multiples of this

        @pytest.fixture
        def store(self, tmp_path):
            # a fresh, empty store for this test, built with the kit's chunk size
            store = MyStore.open(tmp_path / "blobs", chunk_size=self.chunk_size)
            yield store
            store.close()

        def corrupt(self, store, digest):
            # change the stored bytes behind the store's back (flip a byte, truncate, …)
            path = store.path_of(digest)
            data = bytearray(path.read_bytes())
            data[0] ^= 0xFF
            path.write_bytes(bytes(data))

        def temporary_objects(self, store):
            # optional: whatever uploads in flight leave behind, so the kit can check failed puts leave none
            return [p.name for p in (store.root / "tmp").iterdir()]

What a subclass provides:

- the ``store`` fixture: an :class:`~modelyard.hookspecs.storage.ArtifactStore` that is **empty when the test
  starts**; when the store has a chunk-size setting, build it with :attr:`StorageConformance.chunk_size` (small,
  so that blobs of a few chunks stay small);
- :meth:`StorageConformance.corrupt` (required): alter a stored blob's bytes without going through the store;
- :meth:`StorageConformance.temporary_objects` (optional, default: none): the leftovers of uploads in flight.

What it proves:

- round trips of random bytes (hypothesis; sizes 0 to about three chunks, chunk boundaries included), put from a
  path or a stream, read back whole, in pieces and through ``get``; the digest is :func:`hashlib.sha256` of the
  bytes and the size is their length; ``put`` is idempotent;
- tamper detection: a corrupted blob raises :class:`~modelyard.errors.IntegrityError` when read to the end, and
  ``get`` leaves ``dest`` as it was (absent, or its previous content) with no temporary file beside it;
- self-repair: putting the original bytes again (from a stream or a path) after a blob was corrupted rewrites it,
  so it reads back verified, and leaves one blob and no temporary object — a store must not keep a damaged blob
  just because one is present under the digest (make :meth:`~StorageConformance.corrupt` keep the size: a
  size check alone does not see a flipped byte);
- a streamed put of :attr:`~StorageConformance.large_blob_size` bytes (64 MiB, generated as it is read) keeps
  Python's traced memory peak under :attr:`~StorageConformance.large_put_memory_limit` (set it to ``None`` for a
  store that keeps blobs in memory, such as ``memory://``; the put is still checked);
- atomicity: a source stream that raises part-way leaves no blob under any digest, no temporary object, and an
  earlier copy of the same bytes intact;
- :class:`~modelyard.errors.NotFound` for missing blobs (``delete`` of one is not an error) and
  :class:`~modelyard.errors.InvalidInput` for digests that are not 64 lowercase hex characters (path traversal);
- threads putting overlapping blobs at once all get correct references;
- a hypothesis :class:`~hypothesis.stateful.RuleBasedStateMachine` of puts, deletes, reads, ``exists``,
  ``size`` and ``list`` checked step by step against a dict. It first deletes whatever ``list`` shows, so the
  store need not be emptied between hypothesis examples.

Tune the cost with the class attributes; deselect a check by overriding it in the subclass with
``pytest.mark.skip`` and a reason. The kit uses only pytest, hypothesis and modelyard itself.
"""

from __future__ import annotations

import hashlib
import io
import random
import shutil
import tempfile
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, ClassVar, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from modelyard.errors import IntegrityError, InvalidInput, NotFound
from modelyard.hookspecs.storage import ArtifactStore

MiB = 1024 * 1024

#: Digest strings every store must refuse with InvalidInput.
BAD_DIGESTS: tuple[Any, ...] = (
    "",
    "abc",
    "a" * 63,
    "a" * 65,
    "A" * 64,
    "g" * 64,
    "sha256:" + "a" * 64,
    "../" + "a" * 61,
    "../../../../etc/passwd",
    "aa/" + "a" * 61,
    "a" * 63 + "\n",
    " " + "a" * 63,
    42,
    None,
)


# --------------------------------------------------------------------------------------------- helpers
def random_bytes(size: int, seed: int) -> bytes:
    """``size`` reproducible pseudo-random bytes."""
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    """The hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class GeneratedStream(io.RawIOBase):
    """A binary stream of ``size`` pseudo-random bytes made as they are read, never held whole in memory.

    It hashes what it hands out, so :meth:`hexdigest` is the expected digest once the stream is exhausted.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        super().__init__()
        self._left = size
        self._rng = random.Random(seed)
        self._hash = hashlib.sha256()

    def readable(self) -> bool:
        """Always readable."""
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` more bytes; all the rest when ``size`` is negative, as a file would."""
        n = self._left if size is None or size < 0 else min(self._left, size)
        data = self._rng.randbytes(n)
        self._left -= n
        self._hash.update(data)
        return data

    def readinto(self, buffer: Any) -> int:
        """RawIOBase protocol: fill ``buffer``."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def hexdigest(self) -> str:
        """sha256 of every byte handed out so far."""
        return self._hash.hexdigest()


class FailingStream(io.RawIOBase):
    """Hands out ``data[:fail_after]`` and then raises ``error``, like a connection dropping mid-upload."""

    def __init__(self, data: bytes, fail_after: int, error: BaseException | None = None) -> None:
        super().__init__()
        self._data = data
        self._pos = 0
        self._fail_after = fail_after
        self.error = error or OSError("connection reset by peer (injected by the storage conformance kit)")

    def readable(self) -> bool:
        """Always readable."""
        return True

    def read(self, size: int | None = -1) -> bytes:
        """The next bytes, until ``fail_after`` have been given; then raise."""
        if self._pos >= self._fail_after:
            raise self.error
        end = self._fail_after if size is None or size < 0 else min(self._fail_after, self._pos + size)
        chunk = self._data[self._pos:end]
        self._pos = end
        return chunk

    def readinto(self, buffer: Any) -> int:
        """RawIOBase protocol: fill ``buffer``."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def read_in_pieces(stream: Any, sizes: Callable[[], int]) -> bytes:
    """Read ``stream`` to its end with ``read(n)`` calls of varying ``n``."""
    parts = []
    while chunk := stream.read(sizes()):
        parts.append(chunk)
    return b"".join(parts)


def _hashed_read(stream: Any, chunk_size: int) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    while chunk := stream.read(chunk_size):
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n


def _payloads(chunk_size: int) -> st.SearchStrategy[bytes]:
    """Sizes 0 to three chunks and a bit, the boundaries weighted in; contents from a seed (fast to draw)."""
    c = chunk_size
    sizes = st.one_of(st.sampled_from([0, 1, c - 1, c, c + 1, 2 * c, 3 * c, 3 * c + 1]),
                      st.integers(min_value=0, max_value=3 * c + 7))
    return st.builds(random_bytes, sizes, st.integers(min_value=0, max_value=2**32))


# --------------------------------------------------------------------------------------------- the stateful test
class StorageStateMachine(RuleBasedStateMachine):
    """Puts, deletes and reads against a ``dict`` model. Bind ``store`` and ``chunk_size`` in a subclass."""

    store: ClassVar[ArtifactStore]
    chunk_size: ClassVar[int] = 4096
    digests = Bundle("digests")

    def __init__(self) -> None:
        super().__init__()
        for digest in list(self.store.list()):
            self.store.delete(digest)
        self.model: dict[str, bytes] = {}
        self.workdir = Path(tempfile.mkdtemp(prefix="modelyard-storage-kit-"))

    def teardown(self) -> None:
        """Remove the scratch directory."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    @rule(target=digests, data=st.data(), from_path=st.booleans())
    def put(self, data: st.DataObject, from_path: bool) -> str:
        """Store new bytes or bytes seen before, from a stream or a file."""
        pool = st.sampled_from(sorted(self.model.values())) if self.model else st.nothing()
        payload = data.draw(st.one_of(pool, _payloads(self.chunk_size), st.sampled_from([b"", b"modelyard"])))
        if from_path:
            source = self.workdir / "upload"
            source.write_bytes(payload)
            ref = self.store.put(source)
        else:
            ref = self.store.put(io.BytesIO(payload))
        assert (ref.digest, ref.size) == (sha256(payload), len(payload))
        self.model[ref.digest] = payload
        return ref.digest

    @rule(digest=digests)
    def delete(self, digest: str) -> None:
        """Delete a blob, present or already gone."""
        self.store.delete(digest)
        self.model.pop(digest, None)

    @rule(digest=st.one_of(digests, st.builds(lambda b: sha256(b), st.binary(max_size=8))))
    def read(self, digest: str) -> None:
        """``exists``, ``size``, ``open`` and ``get`` agree with the model."""
        assert self.store.exists(digest) == (digest in self.model)
        if digest in self.model:
            assert self.store.size(digest) == len(self.model[digest])
            with self.store.open(digest) as stream:
                assert stream.read() == self.model[digest]
            dest = self.workdir / "download"
            assert Path(self.store.get(digest, dest)).read_bytes() == self.model[digest]
        else:
            with pytest.raises(NotFound):
                self.store.size(digest)
            with pytest.raises(NotFound):
                self.store.open(digest)

    @invariant()
    def listing_matches(self) -> None:
        """``list`` shows exactly the model's digests, each once."""
        listed = list(self.store.list())
        assert sorted(listed) == sorted(self.model), "list() disagrees with the puts and deletes made"


# --------------------------------------------------------------------------------------------- the suite
class StorageConformance:
    """Subclass as ``TestSomething``, provide the ``store`` fixture and :meth:`corrupt` (see the module doc)."""

    #: Chunk size the subclass should build its store with; the kit's blob sizes are multiples of it.
    chunk_size: ClassVar[int] = 4096
    #: Bytes of the streamed large put.
    large_blob_size: ClassVar[int] = 64 * MiB
    #: Peak traced Python memory allowed during that put; ``None`` for stores that keep blobs in memory.
    large_put_memory_limit: ClassVar[int | None] = 16 * MiB
    #: Threads putting at once in the concurrency test.
    concurrency_threads: ClassVar[int] = 4
    #: Settings of the round-trip property test.
    round_trip_settings: ClassVar[settings] = settings(max_examples=40, deadline=None,
                                                       suppress_health_check=[HealthCheck.too_slow])
    #: Settings of the stateful test; raise ``max_examples`` for a deeper run.
    state_machine_settings: ClassVar[settings] = settings(
        max_examples=25, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )

    @pytest.fixture
    def store(self) -> Iterator[ArtifactStore]:
        """Override: a fresh, empty store for this test (built with :attr:`chunk_size` if it takes one)."""
        raise NotImplementedError(f"{type(self).__name__} must override the store fixture: see the docstring of "
                                  "modelyard.testing.storage")

    def corrupt(self, store: ArtifactStore, digest: str) -> None:
        """Override: change the stored bytes of ``digest`` without going through the store's API.

        Prefer flipping bytes in place (same size) to truncating: that is the damage a size check cannot see,
        and the self-repair check is meant to catch a store that relies on one.
        """
        raise NotImplementedError(f"{type(self).__name__} must override corrupt(store, digest) so the kit can "
                                  "check tamper detection: see the docstring of modelyard.testing.storage")

    def temporary_objects(self, store: ArtifactStore) -> list[str]:
        """Override (optional): the temporary objects uploads in flight leave; a failed put must leave none."""
        return []

    # ------------------------------------------------------------------------------------------- basics
    def test_satisfies_the_protocol(self, store: ArtifactStore) -> None:
        """Every method of :class:`ArtifactStore` is there."""
        assert isinstance(store, ArtifactStore)

    def test_store_starts_empty(self, store: ArtifactStore) -> None:
        """The fixture hands each test an empty store."""
        assert list(store.list()) == []
        assert self.temporary_objects(store) == []

    def test_round_trip(self, store: ArtifactStore, tmp_path: Path) -> None:
        """Random bytes come back identical from ``open`` (whole and in pieces) and ``get``; digest is sha256."""

        # An inner function, so that subclasses (several stores in one run) each get their own hypothesis test.
        @self.round_trip_settings
        @given(payload=_payloads(self.chunk_size), from_path=st.booleans(), piece_seed=st.integers(0, 2**16))
        def round_trip(payload: bytes, from_path: bool, piece_seed: int) -> None:
            if from_path:
                source = tmp_path / "upload.bin"
                source.write_bytes(payload)
                ref = store.put(source)
            else:
                ref = store.put(io.BytesIO(payload))
            assert ref.digest == hashlib.sha256(payload).hexdigest()
            assert ref.size == len(payload)
            assert store.exists(ref.digest)
            assert store.size(ref.digest) == len(payload)
            assert ref.digest in set(store.list())
            with store.open(ref.digest) as stream:
                assert stream.read() == payload
            rng = random.Random(piece_seed)
            with store.open(ref.digest) as stream:
                assert read_in_pieces(stream, lambda: rng.randint(1, self.chunk_size + 3)) == payload
            dest = tmp_path / "download.bin"
            assert Path(store.get(ref.digest, dest)) == dest
            assert dest.read_bytes() == payload

        round_trip()

    def test_empty_blob(self, store: ArtifactStore) -> None:
        """Zero bytes are a blob like any other."""
        ref = store.put(io.BytesIO(b""))
        assert (ref.digest, ref.size) == (sha256(b""), 0)
        assert store.size(ref.digest) == 0
        with store.open(ref.digest) as stream:
            assert stream.read() == b""

    def test_put_is_idempotent(self, store: ArtifactStore, tmp_path: Path) -> None:
        """Putting the same bytes again (from a stream or a file) returns the same reference and stores one blob."""
        payload = random_bytes(2 * self.chunk_size + 5, seed=1)
        first = store.put(io.BytesIO(payload))
        source = tmp_path / "again.bin"
        source.write_bytes(payload)
        assert store.put(source) == first
        assert store.put(io.BytesIO(payload)) == first
        assert list(store.list()) == [first.digest]
        with store.open(first.digest) as stream:
            assert stream.read() == payload
        assert self.temporary_objects(store) == []

    def test_distinct_blobs_are_listed_once_each(self, store: ArtifactStore) -> None:
        """``list`` yields every digest exactly once."""
        refs = {store.put(io.BytesIO(random_bytes(n, seed=n))).digest for n in (0, 1, 10, self.chunk_size)}
        listed = list(store.list())
        assert sorted(listed) == sorted(refs)

    def test_get_replaces_an_existing_file(self, store: ArtifactStore, tmp_path: Path) -> None:
        """``get`` into an existing path replaces its content."""
        payload = random_bytes(self.chunk_size + 1, seed=2)
        ref = store.put(io.BytesIO(payload))
        dest = tmp_path / "model.bin"
        dest.write_bytes(b"stale bytes from an earlier download")
        store.get(ref.digest, dest)
        assert dest.read_bytes() == payload

    def test_delete(self, store: ArtifactStore) -> None:
        """A deleted blob is gone from every read and from ``list``; deleting it again is no error."""
        keep = store.put(io.BytesIO(b"keep me"))
        gone = store.put(io.BytesIO(b"delete me"))
        store.delete(gone.digest)
        assert not store.exists(gone.digest)
        assert list(store.list()) == [keep.digest]
        with pytest.raises(NotFound):
            store.open(gone.digest)
        store.delete(gone.digest)
        assert store.exists(keep.digest)
        again = store.put(io.BytesIO(b"delete me"))
        assert again == gone and store.exists(gone.digest)

    # ------------------------------------------------------------------------------------------- integrity
    def test_tampered_blob_fails_on_read(self, store: ArtifactStore) -> None:
        """A blob whose bytes changed raises IntegrityError when read to the end, whole or in pieces."""
        payload = random_bytes(3 * self.chunk_size + 11, seed=3)
        ref = store.put(io.BytesIO(payload))
        self.corrupt(store, ref.digest)
        with store.open(ref.digest) as stream, pytest.raises(IntegrityError, match=ref.digest):
            stream.read()
        with store.open(ref.digest) as stream, pytest.raises(IntegrityError):
            read_in_pieces(stream, lambda: self.chunk_size // 3 + 1)

    def test_tampered_blob_never_reaches_dest(self, store: ArtifactStore, tmp_path: Path) -> None:
        """``get`` of a corrupted blob raises, leaves ``dest`` absent or as it was, and no temporary file."""
        payload = random_bytes(2 * self.chunk_size + 3, seed=4)
        ref = store.put(io.BytesIO(payload))
        self.corrupt(store, ref.digest)
        fresh = tmp_path / "fresh" / "model.bin"
        fresh.parent.mkdir()
        with pytest.raises(IntegrityError):
            store.get(ref.digest, fresh)
        assert list(fresh.parent.iterdir()) == []
        old = tmp_path / "old" / "model.bin"
        old.parent.mkdir()
        old.write_bytes(b"the previous, verified model")
        with pytest.raises(IntegrityError):
            store.get(ref.digest, old)
        assert list(old.parent.iterdir()) == [old]
        assert old.read_bytes() == b"the previous, verified model"

    def test_putting_the_original_again_repairs_a_damaged_blob(self, store: ArtifactStore, tmp_path: Path) -> None:
        """After a blob was damaged, a put of the intact bytes (from a stream, then from a path) rewrites it."""
        payload = random_bytes(3 * self.chunk_size + 17, seed=8)
        ref = store.put(io.BytesIO(payload))
        source = tmp_path / "intact.bin"
        source.write_bytes(payload)
        for again in (lambda: store.put(io.BytesIO(payload)), lambda: store.put(source)):
            self.corrupt(store, ref.digest)
            with store.open(ref.digest) as stream, pytest.raises(IntegrityError):
                stream.read()
            assert again() == ref
            with store.open(ref.digest) as stream:
                assert stream.read() == payload  # read to the end: verified
            dest = tmp_path / "repaired.bin"
            assert Path(store.get(ref.digest, dest)) == dest and dest.read_bytes() == payload
            assert store.size(ref.digest) == len(payload)
            assert list(store.list()) == [ref.digest]
            assert self.temporary_objects(store) == []

    # ------------------------------------------------------------------------------------------- errors
    def test_missing_blob_is_not_found(self, store: ArtifactStore, tmp_path: Path) -> None:
        """Reads of an absent digest raise NotFound naming it; ``exists`` is False; ``delete`` is a no-op."""
        digest = sha256(b"never stored")
        assert not store.exists(digest)
        with pytest.raises(NotFound, match=digest):
            store.open(digest)
        with pytest.raises(NotFound, match=digest):
            store.size(digest)
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        with pytest.raises(NotFound, match=digest):
            store.get(digest, downloads / "missing.bin")
        assert list(downloads.iterdir()) == []
        store.delete(digest)

    @pytest.mark.parametrize("bad", BAD_DIGESTS, ids=repr)
    def test_invalid_digest_is_invalid_input(self, store: ArtifactStore, tmp_path: Path, bad: Any) -> None:
        """Anything but 64 lowercase hex characters is refused before it can touch a path."""
        calls: list[Callable[[], Any]] = [
            lambda: store.open(bad),
            lambda: store.get(bad, tmp_path / "out"),
            lambda: store.exists(bad),
            lambda: store.size(bad),
            lambda: store.delete(bad),
        ]
        for call in calls:
            with pytest.raises(InvalidInput):
                call()
        assert not (tmp_path / "out").exists()

    # ------------------------------------------------------------------------------------------- atomicity
    @pytest.mark.parametrize("fail_at", ["start", "mid-chunk", "after-chunks"])
    def test_failed_put_leaves_nothing(self, store: ArtifactStore, fail_at: str) -> None:
        """A source that raises part-way: the error propagates, no blob appears, no temporary object stays."""
        payload = random_bytes(4 * self.chunk_size, seed=5)
        fail_after = {"start": 0, "mid-chunk": self.chunk_size // 2, "after-chunks": 2 * self.chunk_size + 1}
        stream = FailingStream(payload, fail_after[fail_at])
        with pytest.raises(OSError, match="injected by the storage conformance kit"):
            store.put(cast(IO[bytes], stream))
        assert list(store.list()) == []
        assert not store.exists(sha256(payload))
        assert not store.exists(sha256(payload[: fail_after[fail_at]]))
        assert self.temporary_objects(store) == []

    def test_failed_put_keeps_an_earlier_copy(self, store: ArtifactStore) -> None:
        """A failed put of bytes already stored leaves the stored blob whole."""
        payload = random_bytes(3 * self.chunk_size, seed=6)
        ref = store.put(io.BytesIO(payload))
        with pytest.raises(OSError):
            store.put(cast(IO[bytes], FailingStream(payload, 2 * self.chunk_size)))
        with pytest.raises(KeyboardInterrupt):  # not only Exceptions: an interrupt must clean up too
            store.put(cast(IO[bytes], FailingStream(payload, self.chunk_size, KeyboardInterrupt())))
        assert list(store.list()) == [ref.digest]
        with store.open(ref.digest) as stream:
            assert stream.read() == payload
        assert self.temporary_objects(store) == []

    def test_large_streamed_put_has_bounded_memory(self, store: ArtifactStore) -> None:
        """A large generated stream is stored without holding it in memory, and reads back intact."""
        size = self.large_blob_size
        source = GeneratedStream(size, seed=7)
        tracemalloc.start()
        try:
            ref = store.put(cast(IO[bytes], source))
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (ref.digest, ref.size) == (source.hexdigest(), size)
        if self.large_put_memory_limit is not None:
            assert peak < self.large_put_memory_limit, (
                f"put of {size} bytes peaked at {peak} bytes of Python memory "
                f"(limit {self.large_put_memory_limit}): is it reading the whole source?")
        assert store.size(ref.digest) == size
        with store.open(ref.digest) as stream:
            assert _hashed_read(stream, MiB) == (ref.digest, size)

    # ------------------------------------------------------------------------------------------- concurrency
    def test_concurrent_puts(self, store: ArtifactStore) -> None:
        """Threads putting overlapping blobs at once all get the right reference; every blob reads back."""
        payloads = [random_bytes(self.chunk_size * (i % 3) + i, seed=i % 4) for i in range(4 * self.concurrency_threads)]
        barrier = threading.Barrier(self.concurrency_threads)

        def work(worker: int) -> list[tuple[bytes, Any]]:
            barrier.wait()
            return [(p, store.put(io.BytesIO(p))) for p in payloads[worker::self.concurrency_threads] + payloads[:4]]

        with ThreadPoolExecutor(self.concurrency_threads) as pool:
            results = [r for batch in pool.map(work, range(self.concurrency_threads)) for r in batch]
        for payload, ref in results:
            assert (ref.digest, ref.size) == (sha256(payload), len(payload))
        expected = {sha256(p): p for p in payloads}
        assert sorted(store.list()) == sorted(expected)
        for digest, payload in expected.items():
            with store.open(digest) as stream:
                assert stream.read() == payload
        assert self.temporary_objects(store) == []

    # ------------------------------------------------------------------------------------------- stateful
    def test_behaves_like_a_dict(self, store: ArtifactStore) -> None:
        """Random sequences of puts, deletes and reads agree with a dict at every step."""
        machine = type("BoundStorageMachine", (StorageStateMachine,),
                       {"store": store, "chunk_size": self.chunk_size})
        run_state_machine_as_test(machine, settings=self.state_machine_settings)


__all__ = [
    "BAD_DIGESTS",
    "FailingStream",
    "GeneratedStream",
    "StorageConformance",
    "StorageStateMachine",
    "random_bytes",
    "read_in_pieces",
    "sha256",
]
