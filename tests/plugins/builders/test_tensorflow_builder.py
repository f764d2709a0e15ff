"""The ``tensorflow`` builder: SavedModels zipped deterministically and served by ``serving_default``.

Every test skips (with the reason) when tensorflow cannot be imported; the SavedModel is built once per session.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from builder_models import MiB, understate_sizes, zip_bomb
from modelyard.bundles import ArchiveLimits, zip_dir
from modelyard.errors import BuildError, InvalidInput
from modelyard.hookspecs.builder import Builder, LoadedModel
from modelyard.types import BuildOptions, Signature, TensorSpec
from modelyard_plugins.tensorflow_builder.builder import TensorflowBuilder

SIGNATURE = Signature([TensorSpec("s", "BYTES", (-1,)), TensorSpec("x", "FP32", (-1, 4))],
                      [TensorSpec("n", "INT32", (-1,)), TensorSpec("y", "FP32", (-1, 3))])


@pytest.fixture(scope="module")
def builder(tf) -> TensorflowBuilder:
    return TensorflowBuilder()


@pytest.fixture(scope="module")
def model(builder, tf_bundle):
    loaded = builder.load(tf_bundle.artifact, signature=tf_bundle.signature)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(4)
    return {"x": rng.normal(size=(6, 4)).astype(np.float32),
            "s": np.array([b"", b"a", b"ab", b"abc", b"abcd", "héllo".encode()], dtype=object)}


def _reference(tf_module, inputs):
    import tensorflow as tf

    out = tf_module(tf.constant(inputs["x"]), tf.constant(inputs["s"]))
    return {k: v.numpy() for k, v in out.items()}


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_reads_serving_default(builder, tf_bundle):
    assert isinstance(builder, Builder) and builder.flavor == "tensorflow"
    assert tf_bundle.signature == SIGNATURE
    assert tf_bundle.artifact.name == "savedmodel.zip" and zipfile.is_zipfile(tf_bundle.artifact)
    assert tf_bundle.requirements[0].startswith(("tensorflow==", "tensorflow-cpu=="))
    assert tf_bundle.metadata["signature_key"] == "serving_default"
    assert tf_bundle.validation.ok and tf_bundle.validation.input_source == "generated"


def test_predict_matches_the_module(model, tf_module, inputs):
    assert isinstance(model, LoadedModel)
    out = model.predict(inputs)
    ref = _reference(tf_module, inputs)
    assert set(out) == {"n", "y"}
    np.testing.assert_allclose(out["y"], ref["y"], rtol=1e-6)
    np.testing.assert_array_equal(out["n"], [0, 1, 2, 3, 4, 6])
    # float64 and str inputs are converted
    out2 = model.predict({"x": inputs["x"].astype(np.float64), "s": np.array(["", "a", "ab", "abc", "abcd", "héllo"])})
    np.testing.assert_array_equal(out2["n"], out["n"])


def test_the_zip_digest_is_stable(builder, tf_bundle, savedmodel, tmp_path):
    again = builder.build(savedmodel, options=BuildOptions(), workdir=tmp_path / "again")
    assert _digest(again.artifact) == _digest(tf_bundle.artifact)
    # A copy with fresh timestamps, and an upload zipped by another tool in another order, give the same bytes.
    copy = shutil.copytree(savedmodel, tmp_path / "copy")
    (copy / "saved_model.pb").touch()
    assert _digest(builder.build(copy, options=BuildOptions(), workdir=tmp_path / "c").artifact) == \
        _digest(tf_bundle.artifact)
    upload = tmp_path / "upload.zip"
    with zipfile.ZipFile(upload, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(savedmodel.rglob("*"), reverse=True):
            zf.write(path, "scorer/" + path.relative_to(savedmodel).as_posix())
    from_zip = builder.build(upload, options=BuildOptions(), workdir=tmp_path / "z")
    assert _digest(from_zip.artifact) == _digest(tf_bundle.artifact)
    assert from_zip.metadata["source"] == "zip"


def test_validation_catches_a_wrong_expected_output(builder, savedmodel, tf_module, inputs, tmp_path):
    ref = _reference(tf_module, inputs)
    ok = builder.build(savedmodel, options=BuildOptions(sample_input=inputs, expected_output=ref), workdir=tmp_path)
    assert set(ok.validation.compared_outputs) == {"n", "y"} and ok.validation.max_abs_error < 1e-5
    ref["y"] = ref["y"] * 2
    with pytest.raises(BuildError, match="output 'y' differs"):
        builder.build(savedmodel, options=BuildOptions(sample_input=inputs, expected_output=ref),
                      workdir=tmp_path / "bad")


def test_bad_uploads_give_a_build_error(builder, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BuildError, match="not a SavedModel directory"):
        builder.build(tmp_path / "empty", options=BuildOptions(), workdir=tmp_path / "w")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 nope")
    with pytest.raises(BuildError, match="not a readable zip"):
        builder.build(tmp_path / "broken.zip", options=BuildOptions(), workdir=tmp_path / "w")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(BuildError, match="holds no SavedModel"):
        builder.build(tmp_path / "other.zip", options=BuildOptions(), workdir=tmp_path / "w2")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "saved_model.pb").write_bytes(b"\x00garbage")
    with pytest.raises(BuildError, match=r"tf.saved_model.load failed"):
        builder.build(tmp_path / "fake", options=BuildOptions(), workdir=tmp_path / "w3")
    with pytest.raises(BuildError, match="got int"):
        builder.build(3, options=BuildOptions(), workdir=tmp_path / "w4")


def test_a_savedmodel_without_serving_default_is_refused(builder, tf, tmp_path):
    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "nosig"))
    with pytest.raises(BuildError, match="no 'serving_default' signature"):
        builder.build(tmp_path / "nosig", options=BuildOptions(), workdir=tmp_path / "w")


def test_predict_rejects_wrong_input_names_and_shapes(model, inputs):
    with pytest.raises(InvalidInput, match="unknown input 'z'") as info:
        model.predict({"z": inputs["x"], "s": inputs["s"]})
    assert info.value.field == "inputs.z"
    with pytest.raises(InvalidInput, match=r"'x'.*\[-1, 4\].*\[6, 5\]"):
        model.predict({"x": np.zeros((6, 5), np.float32), "s": inputs["s"]})
    with pytest.raises(InvalidInput, match=r"'s'.*BYTES.*FP32"):
        model.predict({"x": inputs["x"], "s": np.zeros(6, np.float32)})


def test_predict_is_thread_safe(model, tf_module):
    rng = np.random.default_rng(6)
    batches = [{"x": rng.normal(size=(1 + i % 3, 4)).astype(np.float32), "s": np.array([b"x" * i] * (1 + i % 3),
                                                                                        dtype=object)}
               for i in range(32)]
    expected = [_reference(tf_module, b) for b in batches]
    start = threading.Barrier(8)

    def work(i):
        start.wait()
        return [model.predict(batches[j]) for j in range(i, 32, 8)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for i, outs in enumerate(results):
        for j, out in zip(range(i, 32, 8), outs, strict=True):
            np.testing.assert_allclose(out["y"], expected[j]["y"], rtol=1e-6)
            np.testing.assert_array_equal(out["n"], expected[j]["n"])


def test_close_removes_the_extracted_savedmodel(builder, tf_bundle):
    loaded = builder.load(tf_bundle.artifact, signature=tf_bundle.signature)
    extracted = loaded.directory
    assert (extracted / "saved_model.pb").is_file()
    loaded.close()
    assert not extracted.exists()


def test_in_memory_keras_model(builder, tf, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    km = keras.Sequential([keras.Input((5,), name="feat"), keras.layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    bundle = builder.build(km, options=BuildOptions(sample_input={"feat": x}), workdir=tmp_path)
    assert bundle.signature.inputs == (TensorSpec("feat", "FP32", (-1, 5)),)
    out = builder.load(bundle.artifact, signature=bundle.signature).predict({"feat": x})
    (name,) = out
    np.testing.assert_allclose(out[name], km(x).numpy(), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------- archive limits
@pytest.mark.parametrize("lying", [False, True], ids=["bomb", "understated-headers"])
def test_a_zip_bomb_upload_is_refused_and_leaves_nothing(tmp_path, lying):
    bomb = zip_bomb(tmp_path / "model.zip", 8 * MiB)
    if lying:
        understate_sizes(bomb, claimed=1000)
    builder = TensorflowBuilder(archive_limits=ArchiveLimits(max_bytes=MiB))
    with pytest.raises(BuildError, match=r"model.zip: the archive expands to more than 1048576 bytes, over the "
                                         r"limit \(max_archive_bytes = 1048576\)") as info:
        builder.build(bomb, options=BuildOptions(), workdir=tmp_path / "w")
    assert info.value.status == 422
    assert list((tmp_path / "w").iterdir()) == []


def test_an_upload_with_too_many_entries_is_refused(savedmodel, tmp_path):
    archive = zip_dir(savedmodel, tmp_path / "model.zip")
    entries = len(zipfile.ZipFile(archive).infolist())
    with pytest.raises(BuildError, match=rf"has {entries} entries, over the limit \(max_archive_entries = 2\)"):
        TensorflowBuilder(archive_limits=ArchiveLimits(max_entries=2)).build(
            archive, options=BuildOptions(), workdir=tmp_path / "w")
    assert list((tmp_path / "w").iterdir()) == []


def test_the_platform_limits_archives_from_its_config(tmp_path):
    """``[platform] max_archive_bytes`` reaches the builder; the refused registration records nothing and
    leaves nothing in the platform's temporary folder."""
    from modelyard.platform import Platform

    bomb = zip_bomb(tmp_path / "bomb.zip", 4 * MiB)
    with Platform.from_config({"platform": {"data_dir": str(tmp_path / "data"), "max_archive_bytes": MiB,
                                            "max_archive_entries": 100}}) as platform:
        assert platform.builder("tensorflow").archive_limits == ArchiveLimits(max_bytes=MiB, max_entries=100)
        with pytest.raises(BuildError, match=r"max_archive_bytes = 1048576") as info:
            platform.registry.register("bomb", bomb, flavor="tensorflow")
        assert info.value.status == 422
        assert platform.registry.list_models().total == 0
        assert list(platform.tmp_dir.iterdir()) == []
