"""What the ``fsspec`` store promises beyond the conformance kit: layout, config, URLs, assembly, repairing a
damaged blob on the next put, and removing the temporary uploads of puts that crashed."""

from __future__ import annotations

import datetime
import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from modelyard import Platform
from modelyard.errors import ConfigError, IntegrityError, InvalidInput, PluginError
from modelyard.plugins import collect_providers, get_plugin_manager
from modelyard.testing.storage import random_bytes, sha256
from modelyard_plugins.fsspec_storage.store import STALE_UPLOAD_S, FsspecConfig, FsspecStore


@pytest.fixture
def local(tmp_path: Path) -> FsspecStore:
    """A store in ``<tmp>/blobs`` with small chunks."""
    return FsspecStore.from_url(f"file://{tmp_path / 'blobs'}", chunk_size=1024)


def _config(tmp_path: Path, **storage: object) -> dict:
    return {"platform": {"data_dir": str(tmp_path / "data"), "log_level": "warning"}, "storage": storage}


def test_provider_is_offered_through_the_entry_point() -> None:
    entry = collect_providers(get_plugin_manager())["storage"]["fsspec"]
    assert entry.plugin == "fsspec" and entry.distribution == "modelyard"
    assert entry.provider.config_schema is FsspecConfig
    assert entry.provider.factory == FsspecStore.from_config


def test_blobs_live_at_sha256_ab_cd_digest(local: FsspecStore, tmp_path: Path) -> None:
    payload = random_bytes(3000, seed=1)
    ref = local.put(io.BytesIO(payload))
    digest = sha256(payload)
    blob = tmp_path / "blobs" / "sha256" / digest[:2] / digest[2:4] / digest
    assert ref.digest == digest and blob.read_bytes() == payload
    assert local.blob_path(digest) == str(blob)
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_put_streams_from_a_path_without_reading_it_whole(local: FsspecStore, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(random_bytes(10 * 1024 + 3, seed=2))
    sizes: list[int] = []
    real_open = Path.open

    def spying_open(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        f = real_open(self, *args, **kwargs)
        if self == source:
            real_read = f.read

            class Spy:
                def read(self, n: int = -1) -> bytes:
                    sizes.append(n)
                    return real_read(n)

                def __enter__(self):  # type: ignore[no-untyped-def]
                    return self

                def __exit__(self, *exc: object) -> None:
                    f.close()

            return Spy()
        return f

    monkeypatch.setattr(Path, "open", spying_open)
    ref = local.put(source)
    assert ref.size == source.stat().st_size
    assert sizes and all(0 < n <= 1024 for n in sizes)


def test_default_root_is_artifacts_in_the_data_dir(tmp_path: Path) -> None:
    with Platform.from_config(_config(tmp_path)) as platform:
        assert isinstance(platform.storage, FsspecStore)
        assert Path(platform.storage.root) == (tmp_path / "data" / "artifacts").resolve()
        ref = platform.storage.put(io.BytesIO(b"assembled"))
        assert platform.storage.open(ref.digest).read() == b"assembled"


@pytest.mark.parametrize("url", ["blobs", "file://blobs", "./blobs"])
def test_a_relative_local_url_is_inside_the_data_dir(tmp_path: Path, url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not where the blobs should go
    with Platform.from_config(_config(tmp_path, url=url)) as platform:
        assert Path(platform.storage.root) == (tmp_path / "data" / "blobs").resolve()


def test_memory_url_and_options_reach_the_filesystem(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'made' / 'on' / 'demand'}"
    store = FsspecStore.from_url(url, options={"auto_mkdir": True})
    assert store.fs.auto_mkdir is True
    root = f"memory://modelyard-test-{uuid.uuid4().hex}"
    with Platform.from_config(_config(tmp_path, url=root, chunk_size=64, verify_on_read=False)) as platform:
        store = platform.storage
        assert (store.url, store.chunk_size, store.verify_on_read) == (root, 64, False)
        ref = store.put(io.BytesIO(b"in memory"))
        assert fsspec.filesystem("memory").cat_file(store.blob_path(ref.digest)) == b"in memory"
        fsspec.filesystem("memory").rm(store.root, recursive=True)


def test_missing_protocol_package_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Make s3fs unimportable whether or not it is installed here.
    monkeypatch.setitem(sys.modules, "s3fs", None)
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "s3", raising=False)
    with pytest.raises(PluginError, match=r"pip install 'modelyard\[s3\]'"):
        FsspecStore.from_url("s3://acme-models/prod")
    # ... and the config check reports it before anything starts (modelyard check, Platform.from_config).
    with pytest.raises(ConfigError, match=r"\[storage\] url .*needs s3fs.*modelyard\[s3\]"):
        Platform.from_config(_config(tmp_path, url="s3://acme-models/prod"))


def test_other_protocols_name_their_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gcsfs", None)
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "gcs", raising=False)
    with pytest.raises(PluginError, match="pip install gcsfs"):
        FsspecStore.from_url("gcs://bucket/models")


def test_unknown_protocol_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="nope") as info:
        FsspecStore.from_url("nope://bucket/x")
    assert info.value.field == "url"


def test_config_errors_are_reported_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Platform.from_config(_config(tmp_path, url=42, verify_on_raed=True))
    report = str(info.value)
    assert "[storage] url" in report and "got the integer 42" in report
    assert "did you mean 'verify_on_read'?" in report
    with pytest.raises(ConfigError, match="chunk_size must be a positive number of bytes"):
        Platform.from_config(_config(tmp_path, chunk_size=0))


def test_verify_on_read_off_trusts_the_bytes(tmp_path: Path) -> None:
    store = FsspecStore.from_url(str(tmp_path / "blobs"), verify_on_read=False)
    ref = store.put(io.BytesIO(b"original bytes"))
    Path(store.blob_path(ref.digest)).write_bytes(b"tampered bytes")
    assert store.open(ref.digest).read() == b"tampered bytes"


def test_putting_again_heals_a_truncated_blob(local: FsspecStore) -> None:
    payload = random_bytes(5000, seed=3)
    ref = local.put(io.BytesIO(payload))
    Path(local.blob_path(ref.digest)).write_bytes(payload[:100])
    with pytest.raises(IntegrityError):
        local.open(ref.digest).read()
    assert local.put(io.BytesIO(payload)) == ref
    assert local.open(ref.digest).read() == payload


def test_list_skips_stray_files(local: FsspecStore, tmp_path: Path) -> None:
    ref = local.put(io.BytesIO(b"real"))
    sha = tmp_path / "blobs" / "sha256"
    (sha / "README").write_text("not a blob")
    misplaced = sha / "00" / "00"
    misplaced.mkdir(parents=True)
    (misplaced / sha256(b"elsewhere")).write_bytes(b"elsewhere")
    (tmp_path / "blobs" / "tmp" / "upload-in-flight").write_bytes(b"partial")
    assert list(local.list()) == [ref.digest]


def test_put_refuses_what_is_not_a_binary_source(local: FsspecStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="binary stream"):
        local.put(io.StringIO("text"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="does not exist"):
        local.put(tmp_path / "absent.onnx")
    with pytest.raises(InvalidInput, match="directory"):
        local.put(tmp_path)
    with pytest.raises(InvalidInput, match="path or a binary stream"):
        local.put(b"raw bytes")  # type: ignore[arg-type]
    assert list(local.list()) == []
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_get_creates_the_destination_folder(local: FsspecStore, tmp_path: Path) -> None:
    ref = local.put(io.BytesIO(b"weights"))
    dest = tmp_path / "cache" / "deep" / "model.onnx"
    assert local.get(ref.digest, dest) == dest and dest.read_bytes() == b"weights"


# --------------------------------------------------------------------------------------------- self-repair
@pytest.fixture(params=["file", "memory"])
def either(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FsspecStore]:
    """A store on file:// and on memory://, small chunks."""
    if request.param == "file":
        yield FsspecStore.from_url(f"file://{tmp_path / 'blobs'}", chunk_size=1024)
        return
    store = FsspecStore.from_url(f"memory://modelyard-test-{uuid.uuid4().hex}", chunk_size=1024)
    yield store
    store.fs.rm(store.root, recursive=True)


def _flip_in_place(store: FsspecStore, digest: str) -> None:
    path = store.blob_path(digest)
    data = bytearray(store.fs.cat_file(path))
    for i in (0, len(data) // 2, len(data) - 1):
        data[i] ^= 0xFF
    store.fs.pipe_file(path, bytes(data))


def test_reputting_the_intact_bytes_repairs_a_same_size_damaged_blob(either: FsspecStore, tmp_path: Path) -> None:
    payload = random_bytes(5000, seed=11)
    ref = either.put(io.BytesIO(payload))
    _flip_in_place(either, ref.digest)
    assert either.size(ref.digest) == len(payload)  # the damage a size check cannot see
    with pytest.raises(IntegrityError):
        either.get(ref.digest, tmp_path / "broken.bin")

    assert either.put(io.BytesIO(payload)) == ref
    assert either.get(ref.digest, tmp_path / "model.bin").read_bytes() == payload  # get verifies
    assert list(either.list()) == [ref.digest]
    assert either.fs.find(f"{either.root}/tmp") == []


def test_an_intact_duplicate_is_not_rewritten(local: FsspecStore) -> None:
    payload = random_bytes(3000, seed=12)
    ref = local.put(io.BytesIO(payload))
    before = Path(local.blob_path(ref.digest)).stat()
    assert local.put(io.BytesIO(payload)) == ref
    after = Path(local.blob_path(ref.digest)).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


# --------------------------------------------------------------------------------------------- crashed puts
def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_opening_the_store_removes_stale_temporary_uploads_only(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'blobs'}"
    FsspecStore.from_url(url)
    tmp = tmp_path / "blobs" / "tmp"
    stale, fresh = tmp / "stale-upload", tmp / "fresh-upload"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"being written right now")
    _age(stale, STALE_UPLOAD_S + 60)
    _age(fresh, STALE_UPLOAD_S - 60)

    FsspecStore.from_url(url)
    assert sorted(p.name for p in tmp.iterdir()) == ["fresh-upload"]
    stale.write_bytes(b"partial")
    _age(stale, STALE_UPLOAD_S + 60)
    FsspecStore.from_url(url, stale_upload_s=None)  # the sweep can be left out
    assert stale.exists()


def test_memory_store_sweeps_by_age_too() -> None:
    url = f"memory://modelyard-test-{uuid.uuid4().hex}"
    store = FsspecStore.from_url(url)
    store.fs.pipe_file(f"{store.root}/tmp/old", b"partial")
    store.fs.pipe_file(f"{store.root}/tmp/new", b"partial")
    store.fs.store[f"{store.root}/tmp/old"].modified = datetime.datetime.now(datetime.UTC) - datetime.timedelta(
        seconds=STALE_UPLOAD_S + 60)
    try:
        FsspecStore.from_url(url)
        assert store.fs.find(f"{store.root}/tmp") == [f"{store.root}/tmp/new"]
    finally:
        store.fs.rm(store.root, recursive=True)


_CRASHING_PUT = """
import sys, time
from modelyard_plugins.fsspec_storage.store import FsspecStore

class Stalls:
    reads = 0
    def read(self, n=-1):
        self.reads += 1
        if self.reads > 8:  # past the file's write buffer: bytes are on disk
            print("written", flush=True)
            time.sleep(600)
        return b"x" * n

FsspecStore.from_url(sys.argv[1], chunk_size=4096).put(Stalls())
"""


def test_a_put_killed_half_way_leaves_an_upload_the_next_start_removes(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'blobs'}"
    proc = subprocess.Popen([sys.executable, "-c", _CRASHING_PUT, url], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "written\n"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    (partial,) = (tmp_path / "blobs" / "tmp").iterdir()
    assert partial.stat().st_size > 0

    FsspecStore.from_url(url)  # a restart right away: the upload might still be live, so it stays
    assert partial.exists()
    _age(partial, STALE_UPLOAD_S + 1)
    store = FsspecStore.from_url(url)
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == [] and list(store.list()) == []


def test_stale_upload_s_is_configurable_and_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="stale_upload_s must be a positive number of seconds"):
        Platform.from_config(_config(tmp_path, stale_upload_s=0))
    tmp = tmp_path / "data" / "artifacts" / "tmp"
    tmp.mkdir(parents=True)
    (tmp / "upload").write_bytes(b"partial")
    _age(tmp / "upload", 120)
    with Platform.from_config(_config(tmp_path, stale_upload_s=60)):
        assert list(tmp.iterdir()) == []
