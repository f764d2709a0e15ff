"""A content-addressed artifact store on any fsspec filesystem: a local directory, ``memory://``, ``s3://``, ….

Layout under the root URL::

    <root>/sha256/<ab>/<cd>/<64 hex digits>    one blob per digest (ab, cd: the digest's first two byte pairs)
    <root>/tmp/<uuid>                          uploads in flight; renamed into place once hashed

``put`` streams its source in ``chunk_size`` pieces, hashing while it writes a temporary object, then moves that
object to its digest's key, so a failure half-way leaves no blob and no temporary object behind. Reads hash what
they return and raise :class:`~modelyard.errors.IntegrityError` at the end when the bytes no longer match their
digest (unless ``verify_on_read = false``).

Storage repairs itself: a put whose digest is already stored hashes the stored blob (one streamed read, paid only
by puts of bytes already there) and replaces it with the freshly written, verified copy when it no longer matches,
so re-registering the intact file fixes a damaged blob. A process killed in the middle of a put leaves its
temporary object behind; opening the store removes temporary objects nothing has written to for
``stale_upload_s`` seconds (a live put writes every chunk, so its object never gets that old).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs
import fsspec
import structlog
from fsspec.registry import known_implementations
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem
from modelyard.errors import IntegrityError, InvalidInput, NotFound, PluginError
from modelyard.providers import ProviderContext
from modelyard.types import ArtifactRef

log = structlog.get_logger(__name__)

MiB = 1024 * 1024
_DIGEST = re.compile(r"[0-9a-f]{64}")
# Protocols whose filesystem ships in one of our extras; any other names its own package.
_EXTRAS = {"s3": "s3", "s3a": "s3"}
_LOCAL = {"file", "local"}
#: Default ``stale_upload_s``: an hour without a write. A put writes every chunk it reads, so only a put whose
#: source stalls for that long could lose its temporary object (and then fails; no blob is harmed).
STALE_UPLOAD_S = 3600


def _positive(_inst: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be a positive number of bytes, got {value}")


def _positive_seconds(_inst: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be a positive number of seconds, got {value}")


@attrs.frozen(kw_only=True)
class FsspecConfig:
    """The ``[storage]`` section for ``use = "fsspec"``.

    Attributes:
        url: Root of the store, any fsspec URL (``s3://bucket/prefix`` needs ``pip install 'modelyard[s3]'``).
            Default: ``file://<data_dir>/artifacts``. A relative local path is taken relative to the data dir.
        options: Passed to the fsspec filesystem, e.g. ``{ endpoint_url = "…", anon = false }`` for S3.
        chunk_size: Bytes read, hashed and written at a time; memory use of a put or get is about this much.
        verify_on_read: Hash every read and raise IntegrityError on a mismatch. Turn off only for storage you
            trust more than the cost of one sha256 pass per load.
        stale_upload_s: When the store opens, temporary objects of uploads (``<root>/tmp``) unchanged for this
            many seconds are the leftovers of a put that crashed and are removed.
    """

    url: str | None = None
    options: dict[str, Any] = attrs.field(factory=dict)
    chunk_size: int = attrs.field(default=MiB, validator=_positive)
    verify_on_read: bool = True
    stale_upload_s: int = attrs.field(default=STALE_UPLOAD_S, validator=_positive_seconds)


def check_digest(digest: object) -> str:
    """Return ``digest`` if it is 64 lowercase hex characters, else raise InvalidInput (no path traversal)."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        shown = repr(digest)
        raise InvalidInput(
            f"artifact digest {shown if len(shown) <= 80 else shown[:77] + '...'} is not valid: "
            "expected a sha256 as 64 lowercase hexadecimal characters",
            field="digest",
        )
    return digest


def open_filesystem(url: str, options: dict[str, Any] | None = None, *,
                    base_dir: Path | None = None) -> tuple[AbstractFileSystem, str]:
    """Resolve ``url`` to (filesystem, root path); a missing protocol package names what to install."""
    protocol = fsspec.utils.get_protocol(url)
    if protocol in _LOCAL:
        # A relative local path means "inside the data dir", not "wherever the process happens to run".
        local = Path(re.sub(r"^(file|local)://", "", url)).expanduser()
        if not local.is_absolute() and base_dir is not None:
            url = str(base_dir / local)
    try:
        fs, root = fsspec.core.url_to_fs(url, **dict(options or {}))
    except ImportError as exc:
        impl = known_implementations.get(protocol, {})
        package = impl.get("class", protocol).split(".")[0]
        hint = f"pip install 'modelyard[{_EXTRAS[protocol]}]'" if protocol in _EXTRAS else f"pip install {package}"
        raise PluginError(f"storage url {url!r} uses the {protocol!r} protocol, which needs {package} "
                          f"(not installed): {hint}") from exc
    except ValueError as exc:
        raise InvalidInput(f"storage url {url!r}: {exc}", field="url") from None
    return fs, root.rstrip("/")


class VerifyingReader(io.RawIOBase):
    """Reads a blob and hashes what it returns; at end of file raises IntegrityError if the digest differs.

    Wrapped in an :class:`io.BufferedReader` by :meth:`FsspecStore.open`, so callers see an ordinary binary file.
    """

    def __init__(self, raw: Any, digest: str, chunk_size: int) -> None:
        super().__init__()
        self._raw = raw
        self._digest = digest
        self._chunk_size = chunk_size
        self._hash = hashlib.sha256()
        self._size = 0
        self._verdict: bool | None = None  # None until EOF is reached

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the blob; at EOF compare the digest (every later read repeats the verdict)."""
        view = memoryview(buffer).cast("B")
        if self._verdict is not None:
            self._check()
            return 0
        data = self._raw.read(len(view)) if len(view) else b""
        if not data and len(view):
            self._verdict = self._hash.hexdigest() == self._digest
            self._check()
            return 0
        view[: len(data)] = data
        self._hash.update(data)
        self._size += len(data)
        return len(data)

    def readall(self) -> bytes:
        """Read to the end in ``chunk_size`` pieces (the default would use 8 KiB ones)."""
        parts = []
        while chunk := self.read(self._chunk_size):
            parts.append(chunk)
        return b"".join(parts)

    def _check(self) -> None:
        if not self._verdict:
            raise IntegrityError(
                f"artifact sha256:{self._digest} is corrupt: its {self._size} stored bytes hash to "
                f"sha256:{self._hash.hexdigest()}", digest=self._digest)

    def close(self) -> None:
        """Close the underlying file too."""
        if not self.closed:
            with contextlib.suppress(Exception):
                self._raw.close()
        super().close()


@attrs.define
class FsspecStore:
    """:class:`~modelyard.hookspecs.storage.ArtifactStore` on an fsspec filesystem. Build with :meth:`from_url`.

    ``fs`` is the filesystem and ``root`` the store's root path on it (protocol stripped); :meth:`blob_path`
    says where one blob lives, for operators and tests.
    """

    fs: AbstractFileSystem = attrs.field(repr=False)
    root: str
    url: str
    chunk_size: int = MiB
    verify_on_read: bool = True
    _closed: bool = attrs.field(default=False, init=False, repr=False)

    # ------------------------------------------------------------------------------------------- construction
    @classmethod
    def from_url(cls, url: str, *, options: dict[str, Any] | None = None, chunk_size: int = MiB,
                 verify_on_read: bool = True, base_dir: Path | None = None,
                 stale_upload_s: float | None = STALE_UPLOAD_S) -> FsspecStore:
        """Open (and for a local directory, create) the store at ``url``; remove temporary objects that crashed
        puts left, once unchanged for ``stale_upload_s`` seconds (None: leave them)."""
        if chunk_size < 1:
            raise InvalidInput(f"chunk_size must be positive, got {chunk_size}", field="chunk_size")
        fs, root = open_filesystem(url, options, base_dir=base_dir)
        store = cls(fs=fs, root=root, url=url, chunk_size=chunk_size, verify_on_read=verify_on_read)
        store._makedirs(f"{root}/tmp")
        if stale_upload_s is not None:
            store.sweep_uploads(older_than=stale_upload_s)
        return store

    @classmethod
    def from_config(cls, config: FsspecConfig, ctx: ProviderContext) -> FsspecStore:
        """The provider factory: default root ``file://<data_dir>/artifacts``."""
        url = config.url or f"file://{Path(ctx.data_dir) / 'artifacts'}"
        return cls.from_url(url, options=config.options, chunk_size=config.chunk_size,
                            verify_on_read=config.verify_on_read, base_dir=Path(ctx.data_dir),
                            stale_upload_s=config.stale_upload_s)

    def sweep_uploads(self, *, older_than: float = STALE_UPLOAD_S) -> list[str]:
        """Remove temporary objects under ``<root>/tmp`` unchanged for ``older_than`` seconds; returns them.

        Age is the only safe test here: several processes (on several hosts, for a shared bucket) may put into
        one store at once, and a live put's object keeps changing while it is written. A filesystem that cannot
        say when an object changed keeps its temporary objects. Errors are logged, never raised.
        """
        tmp = f"{self.root}/tmp"
        try:
            names = self.fs.find(tmp)
        except FileNotFoundError:
            return []
        except Exception as exc:  # listing is best effort: a store that cannot list still stores
            log.warning("could not list temporary uploads", path=tmp, error=f"{type(exc).__name__}: {exc}")
            return []
        now = datetime.datetime.now(datetime.UTC)
        removed = []
        for name in names:
            try:
                changed = self.fs.modified(name)
            except FileNotFoundError:
                continue
            except Exception:  # NotImplementedError and the like: no age, no removal
                continue
            if changed.tzinfo is None:  # fsspec's local and memory filesystems answer in UTC, some naively
                changed = changed.replace(tzinfo=datetime.UTC)
            if (now - changed).total_seconds() > older_than:
                try:
                    self.fs.rm_file(name)
                except FileNotFoundError:
                    continue
                except Exception as exc:
                    log.warning("could not remove a stale temporary upload", path=name,
                                error=f"{type(exc).__name__}: {exc}")
                    continue
                removed.append(name)
        if removed:
            log.info("removed temporary uploads left by puts that crashed", store=self.url, count=len(removed))
        return removed

    def blob_path(self, digest: str) -> str:
        """Where the blob with ``digest`` lives on :attr:`fs` (after validating the digest)."""
        check_digest(digest)
        return f"{self.root}/sha256/{digest[:2]}/{digest[2:4]}/{digest}"

    def _makedirs(self, path: str) -> None:
        # Object stores have no directories (makedirs is a no-op there); local and sftp-like ones need them.
        self.fs.makedirs(path, exist_ok=True)

    # ------------------------------------------------------------------------------------------- writing
    def put(self, source: Path | IO[bytes]) -> ArtifactRef:
        """Stream a file or binary stream into the store; returns its digest and size. Idempotent."""
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            try:
                stream = path.open("rb")
            except FileNotFoundError:
                raise InvalidInput(f"source {str(path)!r} does not exist", field="source") from None
            except IsADirectoryError:
                raise InvalidInput(f"source {str(path)!r} is a directory, expected a file", field="source") from None
            with stream:
                return self._put_stream(stream)
        if not callable(getattr(source, "read", None)):
            raise InvalidInput(f"put needs a path or a binary stream, got {type(source).__name__}", field="source")
        return self._put_stream(source)

    def _put_stream(self, source: IO[bytes]) -> ArtifactRef:
        tmp = f"{self.root}/tmp/{uuid.uuid4().hex}"
        self._makedirs(f"{self.root}/tmp")
        digest = hashlib.sha256()
        size = 0
        out = self.fs.open(tmp, "wb")
        try:
            while chunk := source.read(self.chunk_size):
                if not isinstance(chunk, bytes | bytearray | memoryview):
                    raise InvalidInput(f"put needs a binary stream; read() returned {type(chunk).__name__}",
                                       field="source")
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.close()
        except BaseException:
            self._abandon(out, tmp)
            raise
        hexdigest = digest.hexdigest()
        final = self.blob_path(hexdigest)
        try:
            stored = self._stored_state(final, hexdigest, size)
            if stored == "intact":
                self._remove(tmp)  # the same bytes are already stored
            else:
                if stored == "damaged":
                    # The upload just written hashed to the digest; the stored copy does not: replace it.
                    log.warning("stored artifact was damaged; replaced by the bytes just put", digest=hexdigest,
                                store=self.url)
                self._makedirs(final.rsplit("/", 1)[0])
                self.fs.mv(tmp, final)
        except BaseException:
            self._remove(tmp)
            raise
        log.debug("artifact stored", digest=hexdigest, size=size, deduplicated=stored == "intact")
        return ArtifactRef(digest=hexdigest, size=size)

    def _stored_state(self, path: str, digest: str, size: int) -> str:
        """``absent``, ``intact`` or ``damaged``: what is stored at ``path`` for a blob of ``digest``, ``size``.

        A blob of the right size is hashed (streamed): a flipped byte keeps the size, and only the digest tells.
        """
        try:
            if not self.fs.exists(path):
                return "absent"
            if self.fs.size(path) != size:
                return "damaged"
            h = hashlib.sha256()
            with self.fs.open(path, "rb") as stored:
                while chunk := stored.read(self.chunk_size):
                    h.update(chunk)
        except FileNotFoundError:  # deleted meanwhile
            return "absent"
        return "intact" if h.hexdigest() == digest else "damaged"

    def _abandon(self, out: Any, tmp: str) -> None:
        try:
            if isinstance(out, AbstractBufferedFile):
                # Closing a buffered remote file would publish what was written so far; discard aborts the
                # upload, and marking it closed keeps __del__ from flushing it later.
                out.discard()
                out.closed = True
            else:
                out.close()
        except Exception:
            log.warning("could not discard a failed upload", path=tmp, exc_info=True)
        finally:
            self._remove(tmp)

    def _remove(self, path: str) -> None:
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass
        except Exception:  # the caller's error matters more; a stray temporary object is harmless
            log.warning("could not remove a temporary object", path=path, exc_info=True)

    def delete(self, digest: str) -> None:
        """Remove a blob; no error if it is absent."""
        path = self.blob_path(digest)
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)

    # ------------------------------------------------------------------------------------------- reading
    def open(self, digest: str) -> IO[bytes]:
        """A binary stream of the blob; raises IntegrityError at end of file if the bytes changed."""
        path = self.blob_path(digest)
        try:
            raw = self.fs.open(path, "rb")
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"artifact sha256:{digest} is not in the store at {self.url}") from None
        if not self.verify_on_read:
            return raw  # type: ignore[no-any-return]
        return io.BufferedReader(VerifyingReader(raw, digest, self.chunk_size),  # type: ignore[return-value]
                                 buffer_size=self.chunk_size)

    def get(self, digest: str, dest: Path) -> Path:
        """Stream a blob into ``dest`` through a temporary file beside it; ``dest`` appears only once verified."""
        dest = Path(dest)
        with self.open(digest) as src:
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
            try:
                with part.open("wb") as out:
                    while chunk := src.read(self.chunk_size):
                        out.write(chunk)
                os.replace(part, dest)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
        return dest

    def exists(self, digest: str) -> bool:
        """Whether a blob is stored."""
        return bool(self.fs.exists(self.blob_path(digest)))

    def size(self, digest: str) -> int:
        """A blob's size in bytes; NotFound if absent."""
        path = self.blob_path(digest)
        try:
            return int(self.fs.size(path))
        except FileNotFoundError:
            raise NotFound(f"artifact sha256:{digest} is not in the store at {self.url}") from None

    def list(self) -> Iterator[str]:
        """Every stored digest (temporary uploads and stray files are skipped)."""
        base = f"{self.root}/sha256"
        try:
            walk = self.fs.walk(base)
            for dirpath, _dirs, files in walk:
                for name in files:
                    if _DIGEST.fullmatch(name) and dirpath.rstrip("/").endswith(f"/{name[:2]}/{name[2:4]}"):
                        yield name
        except FileNotFoundError:
            return

    def close(self) -> None:
        """Nothing to release: fsspec filesystems are shared, cached instances. Idempotent."""
        self._closed = True


__all__ = ["STALE_UPLOAD_S", "FsspecConfig", "FsspecStore", "VerifyingReader", "check_digest", "open_filesystem"]
