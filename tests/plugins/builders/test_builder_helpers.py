"""Tests for :mod:`modelyard.bundles`, the helpers every builder shares, and for the builder plugins' wiring."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from builder_models import MiB, understate_sizes, zip_bomb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from modelyard.bundles import (
    ArchiveLimits,
    InputAdapter,
    bounded_int,
    compare_outputs,
    datatype_of,
    max_threads,
    numpy_dtype,
    parse_specs,
    pin,
    sample_inputs,
    unzip,
    zip_dir,
)
from modelyard.errors import BuildError, InvalidInput
from modelyard.plugins import get_plugin_manager
from modelyard.types import DATATYPES, Signature, TensorSpec

# --------------------------------------------------------------------------------------------- datatypes


@pytest.mark.parametrize("datatype", DATATYPES)
def test_every_datatype_round_trips_through_numpy(datatype):
    assert datatype_of(numpy_dtype(datatype)) == datatype


def test_text_arrays_are_bytes_and_unknown_dtypes_are_refused():
    assert datatype_of(np.array(["a"]).dtype) == "BYTES"
    assert datatype_of(np.array([b"a"]).dtype) == "BYTES"
    with pytest.raises(ValueError, match="complex"):
        datatype_of(np.complex64)
    with pytest.raises(ValueError, match="BF16"):
        numpy_dtype("BF16")


@pytest.mark.parametrize("datatype", DATATYPES)
def test_generated_inputs_respect_datatype_and_make_dynamic_dims_one(datatype):
    sig = Signature([TensorSpec("a", datatype, (-1, 3)), TensorSpec("b", datatype, (2, -1, -1))], [])
    arrays = sample_inputs(sig)
    assert arrays["a"].shape == (1, 3) and arrays["b"].shape == (2, 1, 1)
    assert arrays["a"].dtype == numpy_dtype(datatype)
    np.testing.assert_array_equal(sample_inputs(sig)["a"], arrays["a"])  # same seed, same input


def test_parse_specs_accepts_lists_and_mappings_and_explains_errors():
    want = (TensorSpec("x", "FP32", (-1, 4)),)
    assert parse_specs([{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]) == want
    assert parse_specs({"x": {"datatype": "FP32", "shape": [-1, 4]}}) == want
    assert parse_specs(list(want)) == want
    with pytest.raises(BuildError, match=r"input_spec.*datatype"):
        parse_specs([{"name": "x", "datatype": "FLOAT", "shape": [1]}])
    with pytest.raises(BuildError, match="empty"):
        parse_specs([])


def test_pin_names_the_installed_distribution():
    import onnxruntime

    assert pin("onnxruntime") == f"onnxruntime=={onnxruntime.__version__}"


# --------------------------------------------------------------------------------------------- input adapter
ADAPTER = InputAdapter([TensorSpec("x", "FP32", (-1, 3)), TensorSpec("ids", "INT32", (-1,)),
                        TensorSpec("text", "BYTES", (-1,))])


def _ok_inputs(n: int = 2) -> dict[str, np.ndarray]:
    return {"x": np.zeros((n, 3), np.float32), "ids": np.arange(n, dtype=np.int32),
            "text": np.array([b"a"] * n, dtype=object)}


def test_adapter_passes_matching_inputs_through_untouched():
    inputs = _ok_inputs()
    feed = ADAPTER(inputs)
    assert list(feed) == ["x", "ids", "text"]
    assert all(feed[k] is inputs[k] for k in inputs)  # no copies on the hot path


def test_adapter_converts_safe_dtypes():
    feed = ADAPTER({"x": np.ones((1, 3), np.float64), "ids": np.array([7], np.int64), "text": np.array(["héllo"])})
    assert feed["x"].dtype == np.float32 and feed["ids"].dtype == np.int32 and feed["text"].dtype == object
    feed = ADAPTER({"x": [[1, 2, 3]], "ids": np.array([True]), "text": np.array([b"a"])})
    assert feed["x"].dtype == np.float32 and feed["ids"].tolist() == [1]


@pytest.mark.parametrize(("change", "pattern"), [
    ({"x": np.ones((1, 3), np.float32).astype(np.float64) + 0.5, "ids": np.array([0.5])}, "'ids'.*INT32.*FP64"),
    ({"ids": np.array([2**40])}, "'ids'.*do not fit INT32"),
    ({"text": np.array([1.0])}, "'text'.*BYTES.*FP64"),
    ({"x": np.ones((1, 4), np.float32)}, r"'x'.*\[-1, 3\].*\[1, 4\]"),
    ({"x": np.ones((3,), np.float32)}, r"'x'.*\[-1, 3\].*\[3\]"),
])
def test_adapter_rejects_unsafe_dtypes_and_wrong_shapes_naming_the_input(change, pattern):
    inputs = {**_ok_inputs(1), **change}
    with pytest.raises(InvalidInput, match=pattern) as info:
        ADAPTER(inputs)
    assert info.value.status == 422 and info.value.field.startswith("inputs.")


def test_adapter_names_unknown_and_missing_inputs():
    inputs = _ok_inputs()
    with pytest.raises(InvalidInput, match=r"unknown input 'X'.*x, ids, text") as info:
        ADAPTER({**{k: v for k, v in inputs.items() if k != "x"}, "X": inputs["x"]})
    assert info.value.field == "inputs.X"
    with pytest.raises(InvalidInput, match="missing input 'ids'"):
        ADAPTER({k: v for k, v in inputs.items() if k != "ids"})
    with pytest.raises(InvalidInput, match="unknown input 'extra'"):
        ADAPTER({**inputs, "extra": inputs["x"]})


@given(arr=hnp.arrays(dtype=st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
                                             np.int64, np.uint8, np.bool_]),
                      shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4)))
@settings(max_examples=60, deadline=None)
def test_adapter_accepts_exactly_the_lossless_kinds(arr):
    spec = TensorSpec("t", "FP32", (-1,) * arr.ndim)
    # Every numeric kind converts to a float input; the values survive as float32 would hold them — except a
    # finite float64 beyond float32's range, which would silently become infinite and is refused instead.
    wide = arr.dtype == np.float64 and bool(np.any(np.abs(arr[np.isfinite(arr)]) > np.finfo(np.float32).max))
    if wide:
        with pytest.raises(InvalidInput, match="beyond the range of FP32"):
            InputAdapter([spec])({"t": arr})
    else:
        out = InputAdapter([spec])({"t": arr})["t"]
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(out, arr.astype(np.float32))
        assert out.dtype == np.float32 and out.shape == arr.shape
    int_spec = TensorSpec("t", "INT64", (-1,) * arr.ndim)
    if arr.dtype.kind == "f":
        with pytest.raises(InvalidInput, match="INT64"):
            InputAdapter([int_spec])({"t": arr})
    else:
        assert InputAdapter([int_spec])({"t": arr})["t"].dtype == np.int64


# --------------------------------------------------------------------------------------------- comparison
def test_compare_outputs_reports_the_largest_error_and_accepts_squeezable_shapes():
    names, err = compare_outputs({"y": np.array([[1.0], [2.0]]), "label": np.array(["a", "b"], dtype=object)},
                                 {"y": np.array([1.0, 2.000001]), "label": np.array(["a", "b"])},
                                 rtol=1e-4, atol=1e-5)
    assert names == ("y", "label") and err == pytest.approx(1e-6, rel=1e-3)


@pytest.mark.parametrize(("actual", "expected", "pattern"), [
    ({"y": np.array([1.0, 2.0])}, {"z": np.array([1.0, 2.0])}, "expected output 'z' is not produced.*y"),
    ({"y": np.array([1.0, 2.0])}, {"y": np.array([1.0, 2.5])}, r"output 'y' differs.*max abs error 0\.5.*\(1,\)"),
    ({"y": np.array([1.0, 2.0])}, {"y": np.array([1.0, 2.0, 3.0])}, r"output 'y': shape \[2\].*\[3\]"),
    ({"y": np.array(["a"], dtype=object)}, {"y": np.array(["b"])}, r"output 'y' differs.*index \(0,\)"),
    ({"y": np.array([np.nan])}, {"y": np.array([1.0])}, "output 'y' differs"),
])
def test_compare_outputs_names_the_failing_output(actual, expected, pattern):
    with pytest.raises(BuildError, match=pattern):
        compare_outputs(actual, expected, rtol=1e-4, atol=1e-5)


def test_nan_in_the_same_place_agrees():
    _, err = compare_outputs({"y": np.array([np.nan, 1.0])}, {"y": np.array([np.nan, 1.0])}, rtol=0, atol=0)
    assert err == 0.0


@given(a=hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=5), elements=st.floats(-1e3, 1e3)),
       noise=st.floats(0, 1e-3))
@settings(max_examples=50, deadline=None)
def test_compare_outputs_matches_numpy_allclose(a, noise):
    b = a + noise
    ok = np.allclose(a, b, rtol=1e-4, atol=1e-5)
    try:
        _, err = compare_outputs({"y": a}, {"y": b}, rtol=1e-4, atol=1e-5)
    except BuildError:
        assert not ok
    else:
        assert ok and (a.size == 0 or err == pytest.approx(np.max(np.abs(a - b))))


# --------------------------------------------------------------------------------------------- zips
def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


names = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)


@given(files=st.dictionaries(st.lists(names, min_size=1, max_size=3).map("/".join), st.binary(max_size=64),
                             min_size=1, max_size=6))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_zip_dir_is_deterministic_and_round_trips(tmp_path_factory, files):
    # A path may not be both a file and a folder.
    if any(other.startswith(name + "/") for name in files for other in files):
        return
    a = _tree(tmp_path_factory.mktemp("a"), files)
    b = _tree(tmp_path_factory.mktemp("b"), dict(reversed(list(files.items()))))
    os.utime(next(p for p in b.rglob("*") if p.is_file()), (1, 1))  # other mtimes must not matter
    za, zb = zip_dir(a, a.parent / "a.zip"), zip_dir(b, b.parent / "b.zip")
    assert hashlib.sha256(za.read_bytes()).digest() == hashlib.sha256(zb.read_bytes()).digest()
    out = unzip(za, tmp_path_factory.mktemp("out"))
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files


def test_zip_dir_keeps_empty_folders(tmp_path):
    (tmp_path / "src" / "assets").mkdir(parents=True)
    (tmp_path / "src" / "saved_model.pb").write_bytes(b"x")
    out = unzip(zip_dir(tmp_path / "src", tmp_path / "m.zip"), tmp_path / "out")
    assert (out / "assets").is_dir()


@pytest.mark.parametrize("entry", ["../evil", "/etc/evil", "a/../../evil"])
def test_unzip_refuses_entries_outside_the_target(tmp_path, entry):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(entry, b"x")
    with pytest.raises(BuildError, match="outside the archive"):
        unzip(archive, tmp_path / "out")
    assert not (tmp_path / "evil").exists()


def test_unzip_refuses_links_bombs_and_non_zips(tmp_path):
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("link")
    info.external_attr = (0o120777) << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(BuildError, match="symbolic link"):
        unzip(archive, tmp_path / "out")
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros", b"\0" * 100_000)
    with pytest.raises(BuildError, match="over the limit"):
        unzip(big, tmp_path / "out2", max_bytes=10_000)
    (tmp_path / "not.zip").write_bytes(b"nope")
    with pytest.raises(BuildError, match="not a readable zip"):
        unzip(tmp_path / "not.zip", tmp_path / "out3")


# --------------------------------------------------------------------------------------------- plugin wiring
def test_each_flavor_is_offered_by_its_plugin():
    pm = get_plugin_manager()
    providers = {p.name: p for batch in pm.hook.modelyard_builders() for p in batch}
    assert {"onnx", "torch", "tensorflow", "sklearn"} <= set(providers)
    assert providers["torch"].requires == ("torch",) and providers["torch"].extra == "torch"
    assert providers["tensorflow"].extra == "tensorflow"
    assert providers["sklearn"].requires == ("sklearn", "skl2onnx") and providers["sklearn"].extra == "sklearn"
    assert all(p.slot == "builders" for p in providers.values())


def test_importing_the_builder_plugins_imports_no_framework():
    modules = [f"modelyard_plugins.{p}_builder{s}" for p in ("onnx", "torch", "tensorflow", "sklearn")
               for s in ("", ".builder")]
    code = (f"import sys, modelyard.bundles, {', '.join(modules)}\n"
            "heavy = {'torch', 'tensorflow', 'sklearn', 'skl2onnx', 'onnxruntime', 'onnx', 'keras'}\n"
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------- archive limits
def test_a_zip_bomb_is_refused_by_its_declared_size_and_nothing_is_written(tmp_path):
    bomb = zip_bomb(tmp_path / "bomb.zip")
    assert bomb.stat().st_size < 100_000
    with pytest.raises(BuildError, match=r"bomb.zip: the archive expands to more than 1048576 bytes, over the "
                                         r"limit \(max_archive_bytes = 1048576\)") as info:
        unzip(bomb, tmp_path / "out", limits=ArchiveLimits(max_bytes=MiB))
    assert info.value.status == 422
    assert not (tmp_path / "out").exists()


def test_a_zip_whose_headers_understate_its_size_is_stopped_by_the_bytes_written(tmp_path):
    liar = understate_sizes(zip_bomb(tmp_path / "liar.zip", 8 * MiB), claimed=100)
    with zipfile.ZipFile(liar) as zf:
        assert [i.file_size for i in zf.infolist()] == [100]  # what a header-only check would believe
    with pytest.raises(BuildError, match=r"liar.zip: the archive expands to more than 1048576 bytes, over the "
                                         r"limit \(max_archive_bytes = 1048576\)"):
        unzip(liar, tmp_path / "out", limits=ArchiveLimits(max_bytes=MiB))
    assert not (tmp_path / "out").exists()


def test_an_understated_size_within_the_limit_still_extracts_every_byte(tmp_path):
    liar = understate_sizes(zip_bomb(tmp_path / "liar.zip", 2 * MiB), claimed=100)
    out = unzip(liar, tmp_path / "out", limits=ArchiveLimits(max_bytes=4 * MiB))
    assert (out / "saved_model.pb").stat().st_size == 2 * MiB  # the CRC of the real bytes checked out


def test_too_many_entries_are_refused_before_anything_is_written(tmp_path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(50):
            zf.writestr(f"f{i}", b"x")
    with pytest.raises(BuildError, match=r"many.zip: the archive has 50 entries, over the limit "
                                         r"\(max_archive_entries = 10\)"):
        unzip(archive, tmp_path / "out", max_entries=10)
    assert not (tmp_path / "out").exists()
    assert len(os.listdir(unzip(archive, tmp_path / "ok", max_entries=50))) == 50


def test_a_refused_archive_leaves_an_existing_target_as_it_was(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("mine")
    archive = tmp_path / "mixed.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("small/a.txt", b"a" * 10)
        zf.writestr("big.bin", b"\0" * (2 * MiB))
    understate_sizes(archive, claimed=10)
    with pytest.raises(BuildError, match="max_archive_bytes"):
        unzip(archive, target, max_bytes=MiB)
    assert os.listdir(target) == ["keep"] and (target / "keep").read_text() == "mine"


def test_archive_limits_come_from_the_platform_config():
    from modelyard.config import PlatformConfig

    assert ArchiveLimits() == ArchiveLimits(max_bytes=4 << 30, max_entries=10_000)
    limits = ArchiveLimits.from_config(PlatformConfig(max_archive_bytes=123, max_archive_entries=7))
    assert limits == ArchiveLimits(max_bytes=123, max_entries=7)


# --------------------------------------------------------------------------------------------- numeric bounds
def test_max_threads_is_four_per_cpu_capped(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert max_threads() == 8
    monkeypatch.setattr(os, "cpu_count", lambda: 512)
    assert max_threads() == 256
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert max_threads() == 4


@pytest.mark.parametrize("value", [-1, 11, True, False, "3", 3.0, None])
def test_bounded_int_names_the_field_and_the_range(value):
    with pytest.raises(InvalidInput, match=rf"^workers: expected an integer from 0 to 10, got {value!r}$") as info:
        bounded_int(value, field="workers", low=0, high=10)
    assert info.value.field == "workers"
    assert bounded_int(0, field="workers", low=0, high=10) == 0 and bounded_int(10, field="w", low=0, high=10) == 10
