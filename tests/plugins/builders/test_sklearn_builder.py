"""The ``sklearn`` builder: estimators converted to ONNX, validated against their own predictions, served by
onnxruntime — and pickles refused unless config allows them."""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime
import pytest
from builder_models import PickleBomb, training_data
from modelyard.bundles import max_threads
from modelyard.errors import BuildError, InvalidInput
from modelyard.hookspecs.builder import Builder
from modelyard.types import BuildOptions, Signature, TensorSpec
from modelyard_plugins.onnx_builder.builder import OnnxModel
from modelyard_plugins.sklearn_builder import MAX_FEATURES, MAX_OPSET, SklearnConfig
from modelyard_plugins.sklearn_builder.builder import SklearnBuilder


@pytest.fixture(scope="module")
def builder() -> SklearnBuilder:
    return SklearnBuilder(SklearnConfig())


@pytest.fixture(scope="module")
def permissive() -> SklearnBuilder:
    return SklearnBuilder(SklearnConfig(allow_pickle=True))


@pytest.fixture(scope="module")
def bundle(builder, logreg, tmp_path_factory):
    return builder.build(logreg, options=BuildOptions(), workdir=tmp_path_factory.mktemp("skl"))


@pytest.fixture(scope="module")
def model(builder, bundle):
    return builder.load(bundle.artifact, signature=bundle.signature)


def test_an_in_memory_classifier_is_converted_and_checked_against_itself(builder, bundle):
    assert isinstance(builder, Builder) and builder.flavor == "sklearn"
    assert bundle.signature == Signature(
        [TensorSpec("float_input", "FP32", (-1, 20))],
        [TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 2))])
    # The estimator's own predict / predict_proba were compared on the generated input.
    assert bundle.validation.compared_outputs == ("label", "probabilities")
    assert bundle.validation.max_abs_error < 1e-5
    # Serving never unpickles: only onnxruntime is required.
    assert bundle.requirements == (f"onnxruntime=={onnxruntime.__version__}",)
    assert bundle.metadata["pickle_loaded"] is False
    assert bundle.metadata["estimator"] == "sklearn.linear_model._logistic.LogisticRegression"


def test_served_predictions_equal_the_estimators(model, logreg, rows):
    assert isinstance(model, OnnxModel)
    out = model.predict({"float_input": rows})
    np.testing.assert_allclose(out["probabilities"], logreg.predict_proba(rows), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(out["label"], logreg.predict(rows))


def test_pipelines_regressors_and_string_labels(builder, rows, tmp_path):
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = training_data()
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, np.where(y == 1, "churn", "stay"))
    bundle = builder.build(pipe, options=BuildOptions(sample_input={"float_input": rows}), workdir=tmp_path / "p")
    assert bundle.signature.outputs[0] == TensorSpec("label", "BYTES", (-1,))
    out = builder.load(bundle.artifact, signature=bundle.signature).predict({"float_input": rows})
    assert list(out["label"]) == list(pipe.predict(rows))

    reg = LinearRegression().fit(x, x @ np.arange(20.0))
    bundle = builder.build(reg, options=BuildOptions(options={"input_name": "features"}), workdir=tmp_path / "r")
    assert bundle.signature.inputs == (TensorSpec("features", "FP32", (-1, 20)),)
    assert bundle.validation.compared_outputs == ("variable",)
    out = builder.load(bundle.artifact, signature=bundle.signature).predict({"features": rows})
    np.testing.assert_allclose(out["variable"].ravel(), reg.predict(rows), rtol=1e-4, atol=1e-3)


def test_validation_catches_a_wrong_expected_output(builder, logreg, rows, tmp_path):
    wrong = logreg.predict(rows)
    wrong[0] = 1 - wrong[0]
    opts = BuildOptions(sample_input={"float_input": rows}, expected_output={"label": wrong})
    with pytest.raises(BuildError, match=r"output 'label' differs.*\(0,\)"):
        builder.build(logreg, options=opts, workdir=tmp_path)


def test_a_pickle_is_refused_without_allow_pickle_and_never_unpickled(builder, tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(PickleBomb(marker)))
    with pytest.raises(BuildError, match=r"executes arbitrary code.*\[builders\.sklearn\] allow_pickle = true"):
        builder.build(path, options=BuildOptions(), workdir=tmp_path / "w")
    assert not marker.exists()


def test_with_allow_pickle_a_pickle_is_loaded_and_flagged(permissive, logreg, rows, tmp_path):
    import joblib

    for name, dump in (("model.pkl", lambda p: p.write_bytes(pickle.dumps(logreg))),
                       ("model.joblib", lambda p: joblib.dump(logreg, p))):
        path = tmp_path / name
        dump(path)
        bundle = permissive.build(path, options=BuildOptions(), workdir=tmp_path / name.replace(".", "_"))
        assert bundle.metadata["pickle_loaded"] is True
        out = permissive.load(bundle.artifact, signature=bundle.signature).predict({"float_input": rows})
        np.testing.assert_array_equal(out["label"], logreg.predict(rows))
    # An allowed pickle really runs code — which is why it is off by default.
    marker = tmp_path / "marker"
    (tmp_path / "bomb.pkl").write_bytes(pickle.dumps(PickleBomb(marker)))
    with pytest.raises(BuildError, match="must be a fitted scikit-learn estimator"):
        permissive.build(tmp_path / "bomb.pkl", options=BuildOptions(), workdir=tmp_path / "b")
    assert marker.read_text() == "unpickled"


def test_unusable_sources_give_a_build_error(builder, permissive, tmp_path):
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(BuildError, match="not fitted"):
        builder.build(LogisticRegression(), options=BuildOptions(), workdir=tmp_path)
    with pytest.raises(BuildError, match=r"fitted scikit-learn estimator.*builtins.dict"):
        builder.build({"coef": [1, 2]}, options=BuildOptions(), workdir=tmp_path)
    (tmp_path / "junk.pkl").write_bytes(b"\x80\x05junk")
    with pytest.raises(BuildError, match="cannot load the pickle/joblib file"):
        permissive.build(tmp_path / "junk.pkl", options=BuildOptions(), workdir=tmp_path)


def test_predict_rejects_wrong_input_names_and_shapes(model, rows):
    with pytest.raises(InvalidInput, match="unknown input 'x'"):
        model.predict({"x": rows})
    with pytest.raises(InvalidInput, match=r"'float_input'.*\[-1, 20\].*\[16, 21\]"):
        model.predict({"float_input": np.hstack([rows, rows[:, :1]])})


def test_predict_is_thread_safe(model, logreg):
    rng = np.random.default_rng(11)
    batches = [rng.normal(size=(1 + i % 5, 20)).astype(np.float32) for i in range(40)]
    start = threading.Barrier(8)

    def work(i):
        start.wait()
        return [model.predict({"float_input": batches[j]})["label"] for j in range(i, 40, 8)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for i, outs in enumerate(results):
        for j, out in zip(range(i, 40, 8), outs, strict=True):
            np.testing.assert_array_equal(out, logreg.predict(batches[j]))


# --------------------------------------------------------------------------------------------- bounds
@pytest.mark.parametrize("value", [0, -3, MAX_FEATURES + 1, 10**12, True, "20", 20.0])
def test_n_features_is_bounded(builder, logreg, tmp_path, value):
    with pytest.raises(InvalidInput, match=rf"n_features: expected an integer from 1 to {MAX_FEATURES}, got") as info:
        builder.build(logreg, options=BuildOptions(options={"n_features": value}), workdir=tmp_path)
    assert info.value.field == "n_features"


def test_config_numbers_are_bounded():
    top = max_threads()
    for key in ("intra_op_threads", "inter_op_threads"):
        for value in (-1, top + 1, 10**6, True):
            with pytest.raises(ValueError, match=rf"{key}: expected an integer from 0 to {top}"):
                SklearnConfig(**{key: value})
        assert getattr(SklearnConfig(**{key: top}), key) == top
    for opset in (0, MAX_OPSET + 1, True):
        with pytest.raises(ValueError, match=rf"target_opset: expected an integer from 1 to {MAX_OPSET}"):
            SklearnConfig(target_opset=opset)
    assert SklearnConfig(target_opset=17).target_opset == 17


@pytest.mark.parametrize("key", ["intra_op_threads", "inter_op_threads"])
def test_load_options_are_bounded(builder, bundle, key):
    with pytest.raises(InvalidInput, match=rf"{key}: expected an integer from 0 to {max_threads()}, got 1000000"):
        builder.load(bundle.artifact, signature=bundle.signature, options={key: 1_000_000})
