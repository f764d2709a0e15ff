"""The ``onnx`` builder: real onnxruntime sessions on models built in the test session."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from modelyard.bundles import max_threads
from modelyard.errors import BuildError, ConfigError, InvalidInput
from modelyard.hookspecs.builder import Builder, LoadedModel
from modelyard.platform import resolve_config
from modelyard.types import BuildOptions, Signature, TensorSpec
from modelyard_plugins.onnx_builder import OnnxConfig
from modelyard_plugins.onnx_builder.builder import OnnxBuilder


@pytest.fixture(scope="module")
def builder() -> OnnxBuilder:
    return OnnxBuilder(OnnxConfig())


@pytest.fixture(scope="module")
def bundle(builder, logreg_onnx, tmp_path_factory):
    return builder.build(logreg_onnx, options=BuildOptions(), workdir=tmp_path_factory.mktemp("work"))


@pytest.fixture(scope="module")
def loaded(builder, bundle):
    model = builder.load(bundle.artifact, signature=bundle.signature)
    yield model
    model.close()


def _tiny_graph(*, input_shape, output_shape, elem=None, outputs_type=None):
    """y = x + 1 with the given declared shapes (None leaves the output's shape undeclared)."""
    from onnx import TensorProto, helper

    elem = elem or TensorProto.FLOAT
    x = helper.make_tensor_value_info("x", elem, input_shape)
    y = (outputs_type if outputs_type is not None else helper.make_tensor_value_info("y", elem, output_shape))
    one = helper.make_tensor("one", elem, [], [1])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "tiny", [x], [y], [one])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_build_derives_signature_requirements_and_keeps_the_upload_bytes(builder, bundle, logreg_onnx, tmp_path):
    assert isinstance(builder, Builder) and builder.flavor == "onnx"
    assert bundle.signature == Signature(
        [TensorSpec("float_input", "FP32", (-1, 20))],
        [TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 2))])
    assert bundle.requirements == (f"onnxruntime=={onnxruntime.__version__}",)
    assert bundle.artifact.read_bytes() == logreg_onnx.read_bytes()
    assert bundle.metadata["format"] == "onnx" and bundle.metadata["producer"].startswith("skl2onnx")
    assert bundle.validation.ok and bundle.validation.input_source == "generated"
    assert bundle.validation.max_abs_error is None  # nothing to compare against


def test_loaded_model_predicts_what_the_framework_predicts(loaded, logreg, rows):
    assert isinstance(loaded, LoadedModel)
    out = loaded.predict({"float_input": rows})
    assert set(out) == {"label", "probabilities"}
    np.testing.assert_allclose(out["probabilities"], logreg.predict_proba(rows), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(out["label"], logreg.predict(rows))
    # float64 rows (what JSON decoding gives) are converted, not refused
    np.testing.assert_allclose(loaded.predict({"float_input": rows.astype(np.float64)})["probabilities"],
                               out["probabilities"])


def test_validation_compares_a_sample_with_its_expected_output(builder, logreg, rows, logreg_onnx, tmp_path):
    opts = BuildOptions(sample_input={"float_input": rows},
                        expected_output={"probabilities": logreg.predict_proba(rows), "label": logreg.predict(rows)})
    bundle = builder.build(logreg_onnx, options=opts, workdir=tmp_path)
    v = bundle.validation
    assert v.input_source == "sample" and v.compared_outputs == ("probabilities", "label")
    assert v.max_abs_error is not None and v.max_abs_error < 1e-5


def test_validation_catches_a_wrong_expected_output(builder, logreg, rows, logreg_onnx, tmp_path):
    wrong = logreg.predict_proba(rows)
    wrong[3, 1] += 0.01
    opts = BuildOptions(sample_input={"float_input": rows}, expected_output={"probabilities": wrong})
    with pytest.raises(BuildError, match=r"output 'probabilities' differs.*max abs error 0\.0099.*\(3, 1\)"):
        builder.build(logreg_onnx, options=opts, workdir=tmp_path)
    with pytest.raises(BuildError, match=r"expected output 'proba' is not produced.*label, probabilities"):
        builder.build(logreg_onnx, options=BuildOptions(expected_output={"proba": wrong}), workdir=tmp_path)


def test_a_sample_that_does_not_fit_the_signature_fails_the_build(builder, logreg_onnx, tmp_path):
    with pytest.raises(BuildError, match=r"sample input does not fit.*'float_input'.*\[1, 19\]"):
        builder.build(logreg_onnx, options=BuildOptions(sample_input={"float_input": np.zeros((1, 19))}),
                      workdir=tmp_path)


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all \x00\xff", b"\x08\x07\x12\x03abc"])
def test_corrupt_files_give_a_build_error(builder, tmp_path, content):
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(BuildError, match="ONNX"):
        builder.build(path, options=BuildOptions(), workdir=tmp_path / "w")


def test_unsupported_sources_give_a_build_error(builder, tmp_path):
    with pytest.raises(BuildError, match="directory"):
        builder.build(tmp_path, options=BuildOptions(), workdir=tmp_path / "w")
    with pytest.raises(BuildError, match="got int"):
        builder.build(42, options=BuildOptions(), workdir=tmp_path / "w")


def test_an_invalid_graph_fails_the_checker(builder, tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    graph = helper.make_graph([helper.make_node("Add", ["x", "nowhere"], ["y"])], "bad", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with pytest.raises(BuildError, match=r"invalid.*nowhere"):
        builder.build(model.SerializeToString(), options=BuildOptions(), workdir=tmp_path)


def test_symbolic_and_unknown_dims_are_dynamic(builder, tmp_path):
    from onnx import TensorProto, helper

    unknown = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    unknown.type.tensor_type.shape.dim[0].Clear()  # neither a value nor a name
    model = _tiny_graph(input_shape=["batch", 3], output_shape=None, outputs_type=unknown)
    bundle = builder.build(model, options=BuildOptions(), workdir=tmp_path)
    assert bundle.signature == Signature([TensorSpec("x", "FP32", (-1, 3))], [TensorSpec("y", "FP32", (-1, 3))])
    out = builder.load(bundle.artifact, signature=bundle.signature).predict({"x": np.zeros((2, 3), np.float32)})
    np.testing.assert_array_equal(out["y"], np.ones((2, 3), np.float32))


def test_external_data_is_folded_into_one_file(builder, tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "ext", [x], [y],
                              [numpy_helper.from_array(weights, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    src = tmp_path / "src"
    src.mkdir()
    onnx.save_model(model, str(src / "m.onnx"), save_as_external_data=True, location="weights.bin",
                    size_threshold=0)
    assert (src / "weights.bin").exists()
    bundle = builder.build(src / "m.onnx", options=BuildOptions(), workdir=tmp_path / "w")
    assert list((tmp_path / "w").iterdir()) == [bundle.artifact]
    (src / "weights.bin").unlink()  # the bundle must not need it
    out = builder.load(bundle.artifact, signature=bundle.signature).predict({"x": np.eye(3, dtype=np.float32)})
    np.testing.assert_array_equal(out["y"], weights)


def test_zipmap_outputs_are_refused_with_the_fix(builder, logreg, tmp_path):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    model = to_onnx(logreg, initial_types=[("float_input", FloatTensorType([None, 20]))])
    with pytest.raises(BuildError, match=r"output 'output_probability' is a sequence_type.*zipmap"):
        builder.build(model, options=BuildOptions(), workdir=tmp_path)


def test_predict_rejects_wrong_input_names_and_shapes(loaded, rows):
    with pytest.raises(InvalidInput, match="unknown input 'features'") as info:
        loaded.predict({"features": rows})
    assert info.value.status == 422 and info.value.field == "inputs.features"
    with pytest.raises(InvalidInput, match=r"'float_input'.*\[-1, 20\].*\[16, 19\]"):
        loaded.predict({"float_input": rows[:, :19]})
    with pytest.raises(InvalidInput, match=r"'float_input'.*FP32.*BYTES"):
        loaded.predict({"float_input": np.array([["a"] * 20])})
    with pytest.raises(InvalidInput, match="missing input 'float_input'"):
        loaded.predict({})


def test_predict_is_thread_safe(loaded, logreg):
    rng = np.random.default_rng(9)
    batches = [rng.normal(size=(1 + i % 4, 20)).astype(np.float32) for i in range(64)]
    expected = [logreg.predict_proba(b) for b in batches]
    start = threading.Barrier(8)

    def work(i: int) -> list[np.ndarray]:
        start.wait()
        return [loaded.predict({"float_input": batches[j]})["probabilities"] for j in range(i, 64, 8)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for i, outs in enumerate(results):
        for j, out in zip(range(i, 64, 8), outs, strict=True):
            np.testing.assert_allclose(out, expected[j], rtol=1e-4, atol=1e-5)


def test_unavailable_providers_fall_back_to_cpu_and_load_options_override(logreg_onnx, tmp_path, rows):
    builder = OnnxBuilder(OnnxConfig(providers=["NoSuchExecutionProvider"], intra_op_threads=2))
    bundle = builder.build(logreg_onnx, options=BuildOptions(), workdir=tmp_path)
    model = builder.load(bundle.artifact, signature=bundle.signature, options={"intra_op_threads": 1})
    assert model._session.get_providers() == ["CPUExecutionProvider"]
    assert model.predict({"float_input": rows})["label"].shape == (16,)
    with pytest.raises(InvalidInput, match="intra_op_threads"):
        builder.load(bundle.artifact, signature=bundle.signature, options={"intra_op_threads": -1})


def test_load_without_a_stored_signature_reads_it_from_the_model(builder, bundle):
    model = builder.load(Path(bundle.artifact), signature=None)
    assert model.signature == bundle.signature


# --------------------------------------------------------------------------------------------- bounds
@pytest.mark.parametrize("key", ["intra_op_threads", "inter_op_threads"])
@pytest.mark.parametrize("value", [-1, max_threads() + 1, 1_000_000, True, "4", 2.0, None])
def test_thread_counts_are_bounded_in_load_options(builder, bundle, key, value):
    """A million onnxruntime threads would hang the deploy and take gigabytes: refused, naming the range."""
    with pytest.raises(InvalidInput, match=rf"{key}: expected an integer from 0 to {max_threads()}, got") as info:
        builder.load(bundle.artifact, signature=bundle.signature, options={key: value})
    assert info.value.field == key and info.value.status == 422


@pytest.mark.parametrize("key", ["intra_op_threads", "inter_op_threads"])
def test_thread_counts_are_bounded_in_config(key):
    for value in (-1, max_threads() + 1, 1_000_000, True):
        with pytest.raises(ValueError, match=rf"{key}: expected an integer from 0 to {max_threads()}"):
            OnnxConfig(**{key: value})
    with pytest.raises(ConfigError, match=rf"\[builders\].*{key}: expected an integer from 0 to {max_threads()}, "
                                          "got 1000000"):
        resolve_config({"builders": {"onnx": {key: 1_000_000}}})


def test_the_bounds_themselves_are_accepted(builder, bundle, rows):
    top = max_threads()
    assert OnnxConfig(intra_op_threads=top, inter_op_threads=0).intra_op_threads == top
    model = builder.load(bundle.artifact, signature=bundle.signature,
                         options={"intra_op_threads": top, "inter_op_threads": 0})
    assert model.predict({"float_input": rows})["label"].shape == (16,)
    model.close()


def test_a_graph_declaring_a_huge_input_needs_a_sample(builder, tmp_path):
    """A fixed 10^5 x 10^5 input would make validation allocate 40 GB: the generated input is bounded."""
    path = tmp_path / "huge.onnx"
    path.write_bytes(_tiny_graph(input_shape=[100_000, 100_000], output_shape=[100_000, 100_000])
                     .SerializeToString())
    with pytest.raises(BuildError, match=r"input 'x' has shape \[100000, 100000\]: over 16777216 elements.*"
                                         "pass a sample_input"):
        builder.build(path, options=BuildOptions(), workdir=tmp_path / "w")
