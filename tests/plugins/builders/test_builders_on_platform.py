"""Each flavor end to end on the embedded platform: ``Platform.from_config`` → ``registry.register`` → deploy →
predict, with the real registry, storage and local runtime providers."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from modelyard.errors import BuildError, NotFound
from modelyard.platform import Platform


@pytest.fixture
def make_platform(tmp_path):
    made = []

    def make(builders=None):
        p = Platform.from_config({"platform": {"data_dir": str(tmp_path / f"data{len(made)}")},
                                  "builders": builders or {}})
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def test_onnx_registers_deploys_and_predicts(make_platform, logreg_onnx, logreg, rows):
    platform = make_platform()
    version = platform.registry.register("churn", logreg_onnx, flavor="onnx",
                                         sample_input={"float_input": rows},
                                         expected_output={"probabilities": logreg.predict_proba(rows)})
    assert version.artifact.digest == hashlib.sha256(logreg_onnx.read_bytes()).hexdigest()
    assert version.signature.inputs[0].name == "float_input"
    assert version.metadata["validation"]["compared_outputs"] == ["probabilities"]
    assert version.requirements[0].startswith("onnxruntime==")
    platform.deploy("churn")
    out = platform.predict("churn", {"float_input": rows})
    np.testing.assert_allclose(out["probabilities"], logreg.predict_proba(rows), rtol=1e-4, atol=1e-5)


def test_a_failed_validation_records_nothing(make_platform, logreg_onnx, logreg, rows):
    platform = make_platform()
    with pytest.raises(BuildError, match="'probabilities'"):
        platform.registry.register("churn", logreg_onnx, flavor="onnx", sample_input={"float_input": rows},
                                   expected_output={"probabilities": logreg.predict_proba(rows) + 0.1})
    with pytest.raises(NotFound):
        platform.registry.get_version("churn")
    assert list(platform.storage.list()) == []


def test_sklearn_pickles_follow_the_config(make_platform, logreg, rows, tmp_path):
    import pickle

    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(logreg))
    strict = make_platform()
    version = strict.registry.register("inmem", logreg, flavor="sklearn")
    assert version.metadata["pickle_loaded"] is False
    with pytest.raises(BuildError, match="allow_pickle = true"):
        strict.registry.register("pickled", path, flavor="sklearn")

    permissive = make_platform({"sklearn": {"allow_pickle": True}})
    version = permissive.registry.register("pickled", path, flavor="sklearn")
    assert version.metadata["pickle_loaded"] is True
    permissive.deploy("pickled")
    np.testing.assert_array_equal(permissive.predict("pickled", {"float_input": rows})["label"], logreg.predict(rows))


def test_torch_program_registers_deploys_and_predicts(make_platform, mlp_files, mlp, mlp_inputs):
    import torch

    platform = make_platform()
    version = platform.registry.register("mlp", mlp_files["export"], flavor="torch")
    assert [i.name for i in version.signature.inputs] == ["x", "scale"]
    platform.deploy("mlp")
    out = platform.predict("mlp", mlp_inputs)
    with torch.inference_mode():
        want = mlp(torch.from_numpy(mlp_inputs["x"]), torch.from_numpy(mlp_inputs["scale"]))[0].numpy()
    np.testing.assert_allclose(out["output_0"], want, rtol=1e-5, atol=1e-6)


def test_tensorflow_savedmodel_registers_deploys_and_predicts(make_platform, savedmodel, tf_bundle):
    platform = make_platform()
    v1 = platform.registry.register("scorer", savedmodel, flavor="tensorflow")
    v2 = platform.registry.register("scorer", savedmodel, flavor="tensorflow")
    assert v1.artifact.digest == v2.artifact.digest == hashlib.sha256(tf_bundle.artifact.read_bytes()).hexdigest()
    platform.deploy("scorer")
    out = platform.predict("scorer", {"x": np.ones((2, 4), np.float32), "s": np.array([b"ab", b"c"], dtype=object)})
    np.testing.assert_array_equal(out["n"], [2, 1])
