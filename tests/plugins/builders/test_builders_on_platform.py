"""Each flavor end to end on the embedded platform: ``Platform.from_config`` → ``registry.register`` → deploy →
predict, with the real registry, storage and local runtime providers."""

from __future__ import annotations

import hashlib
import sys
import time

import numpy as np
import pytest
from modelyard.errors import BuildError, InvalidInput, NotFound, PluginError
from modelyard.platform import Platform
from tiny_models import looping_onnx


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


# --------------------------------------------------------------------------------------------- bounded builds


def test_a_registration_past_build_timeout_s_is_stopped_and_records_nothing(tmp_path, logreg_onnx):
    platform = Platform.from_config({"platform": {"data_dir": str(tmp_path / "data"), "build_timeout_s": 1}})
    try:
        hostile = looping_onnx(tmp_path / "loop.onnx")
        started = time.monotonic()
        with pytest.raises(BuildError, match=r"validation did not finish within 1 s \(build_timeout_s\)") as info:
            platform.registry.register("hostile", hostile, flavor="onnx")
        assert time.monotonic() - started < 30
        assert info.value.status == 422
        with pytest.raises(NotFound):
            platform.registry.get_model("hostile")
        assert list(platform.tmp_dir.iterdir()) == []
        assert platform.registry.register("fine", logreg_onnx, flavor="onnx").number == 1  # still builds
    finally:
        platform.close()


# --------------------------------------------------------------------------------------------- module factories
FACTORY = '''
import torch

class TinyMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(4, 8)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, x, scale):
        return self.out(torch.relu(self.hidden(x))) * scale, x.sum(dim=1)

def build():
    return TinyMLP()
'''
INPUT_SPEC = [{"name": "x", "datatype": "FP32", "shape": [-1, 4]},
              {"name": "scale", "datatype": "FP32", "shape": [-1, 1]}]


def test_module_factories_and_module_paths_come_from_the_config_file(tmp_path, mlp_files, mlp, mlp_inputs,
                                                                      monkeypatch):
    """``module_paths = ["./models"]`` is read from the config file's folder, whatever the working directory; the
    factory is imported in the build process, where the upload is built."""
    import torch

    project = tmp_path / "project"
    (project / "models" / "ranker_cfg").mkdir(parents=True)
    (project / "models" / "ranker_cfg" / "__init__.py").write_text("")
    (project / "models" / "ranker_cfg" / "model.py").write_text(FACTORY)
    (project / "modelyard.toml").write_text(
        '[platform]\ndata_dir = "./.modelyard"\n\n'
        '[builders.torch]\nmodule_factories = ["ranker_cfg.model:*"]\nmodule_paths = ["./models"]\n')
    monkeypatch.chdir(tmp_path)
    with Platform.from_config(project / "modelyard.toml") as platform:
        version = platform.registry.register("ranker", mlp_files["safetensors"], flavor="torch",
                                             options={"module_factory": "ranker_cfg.model:build",
                                                      "input_spec": INPUT_SPEC})
        with pytest.raises(InvalidInput, match=r"'os:abort' is not allowed.*module_factories") as info:
            platform.registry.register("evil", mlp_files["safetensors"], flavor="torch",
                                       options={"module_factory": "os:abort", "input_spec": INPUT_SPEC})
        assert info.value.status == 422
        platform.deploy("ranker")
        out = platform.predict("ranker", mlp_inputs)
    assert "ranker_cfg" not in sys.modules  # imported in the build process only
    with torch.inference_mode():
        want = mlp(torch.from_numpy(mlp_inputs["x"]), torch.from_numpy(mlp_inputs["scale"]))[0].numpy()
    np.testing.assert_allclose(out["output_0"], want, rtol=1e-5, atol=1e-6)
    assert version.metadata["source"] == "safetensors"


def test_a_module_path_that_is_not_a_folder_fails_at_assembly(tmp_path):
    with pytest.raises(PluginError, match=r"\[builders.torch\] module_paths: 'nope' is not a directory"):
        Platform.from_config({"platform": {"data_dir": str(tmp_path / "data")},
                              "builders": {"torch": {"module_paths": ["nope"]}}})


# --------------------------------------------------------------------------------------------- deploy options
@pytest.mark.parametrize("options", [{"intra_op_threads": 1_000_000}, {"inter_op_threads": True},
                                     {"intra_op_threads": -1}])
def test_out_of_range_load_options_fail_the_deploy_naming_the_field(make_platform, logreg_onnx, options):
    platform = make_platform()
    platform.registry.register("churn", logreg_onnx, flavor="onnx")
    key = next(iter(options))
    with pytest.raises(InvalidInput, match=rf"{key}: expected an integer from 0 to \d+") as info:
        platform.deploy("churn", options=options)
    assert info.value.status == 422
