"""The ``torch`` builder: TorchScript files, torch.export programs, in-memory modules and safetensors weights."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from modelyard.bundles import ArchiveLimits, max_threads
from modelyard.errors import BuildError, InvalidInput, Unavailable
from modelyard.hookspecs.builder import Builder, LoadedModel
from modelyard.types import BuildOptions, Signature, TensorSpec
from modelyard_plugins.torch_builder import TorchConfig
from modelyard_plugins.torch_builder.builder import EXPORT, TORCHSCRIPT, TorchBuilder, sniff_format

INPUT_SPEC = [{"name": "x", "datatype": "FP32", "shape": [-1, 4]},
              {"name": "scale", "datatype": "FP32", "shape": [-1, 1]}]
SIGNATURE = Signature([TensorSpec("x", "FP32", (-1, 4)), TensorSpec("scale", "FP32", (-1, 1))],
                      [TensorSpec("output_0", "FP32", (-1, 3)), TensorSpec("output_1", "FP32", (-1,))])


@pytest.fixture(scope="module")
def builder() -> TorchBuilder:
    return TorchBuilder(TorchConfig(module_factories=["builder_models:*"]))


def _reference(mlp, inputs):
    with torch.inference_mode():
        logits, total = mlp(torch.from_numpy(inputs["x"]), torch.from_numpy(inputs["scale"]))
    return {"output_0": logits.numpy(), "output_1": total.numpy()}


def _check_predictions(builder, bundle, mlp, mlp_inputs):
    model = builder.load(bundle.artifact, signature=bundle.signature)
    assert isinstance(model, LoadedModel)
    out = model.predict(mlp_inputs)
    ref = _reference(mlp, mlp_inputs)
    assert set(out) == set(ref)
    for name in ref:
        np.testing.assert_allclose(out[name], ref[name], rtol=1e-5, atol=1e-6)
    return model


@pytest.fixture(scope="module")
def export_bundle(builder, mlp_files, tmp_path_factory):
    return builder.build(mlp_files["export"], options=BuildOptions(), workdir=tmp_path_factory.mktemp("pt2"))


@pytest.fixture(scope="module")
def export_model(builder, export_bundle):
    return builder.load(export_bundle.artifact, signature=export_bundle.signature)


def test_export_program_signature_comes_from_its_graph(builder, export_bundle, mlp, mlp_inputs):
    assert isinstance(builder, Builder) and builder.flavor == "torch"
    assert export_bundle.signature == SIGNATURE
    assert export_bundle.metadata["format"] == EXPORT
    assert export_bundle.requirements == (f"torch=={torch.__version__}",)
    assert export_bundle.artifact.parent.name.startswith("pt2")
    _check_predictions(builder, export_bundle, mlp, mlp_inputs)


def test_torchscript_needs_an_input_spec_or_a_sample(builder, mlp_files, tmp_path):
    with pytest.raises(BuildError, match=r"torchscript model carries no input dtypes.*input_spec.*sample_input"):
        builder.build(mlp_files["torchscript"], options=BuildOptions(), workdir=tmp_path)


def test_torchscript_with_an_input_spec(builder, mlp_files, mlp, mlp_inputs, tmp_path):
    bundle = builder.build(mlp_files["torchscript"], options=BuildOptions(options={"input_spec": INPUT_SPEC}),
                           workdir=tmp_path)
    assert bundle.signature == SIGNATURE and bundle.metadata["format"] == TORCHSCRIPT
    _check_predictions(builder, bundle, mlp, mlp_inputs)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_in_memory_script_module_with_a_sample_and_named_outputs(builder, mlp, mlp_inputs, tmp_path):
    sample = {k: v[:1] for k, v in mlp_inputs.items()}
    ref = _reference(mlp, sample)
    opts = BuildOptions(sample_input=sample, expected_output={"logits": ref["output_0"]},
                        options={"output_names": ["logits", "total"]})
    bundle = builder.build(torch.jit.script(mlp), options=opts, workdir=tmp_path)
    assert [o.name for o in bundle.signature.outputs] == ["logits", "total"]
    assert bundle.validation.input_source == "sample" and bundle.validation.compared_outputs == ("logits",)
    assert bundle.validation.max_abs_error < 1e-6
    out = builder.load(bundle.artifact, signature=bundle.signature).predict(mlp_inputs)
    np.testing.assert_allclose(out["logits"], _reference(mlp, mlp_inputs)["output_0"], rtol=1e-5, atol=1e-6)


def test_in_memory_exported_program_and_renamed_inputs(builder, mlp, mlp_inputs, tmp_path):
    program = torch.export.export(mlp, (torch.randn(2, 4), torch.ones(2, 1)))  # static batch of 2
    bundle = builder.build(program, options=BuildOptions(options={"input_names": ["features", "weight"]}),
                           workdir=tmp_path)
    assert [(i.name, i.shape) for i in bundle.signature.inputs] == [("features", (2, 4)), ("weight", (2, 1))]
    model = builder.load(bundle.artifact, signature=bundle.signature)
    two = {"features": mlp_inputs["x"][:2], "weight": mlp_inputs["scale"][:2]}
    np.testing.assert_allclose(model.predict(two)["output_0"],
                               _reference(mlp, {"x": two["features"], "scale": two["weight"]})["output_0"],
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(InvalidInput, match=r"'features'.*\[2, 4\].*\[5, 4\]"):
        model.predict({"features": mlp_inputs["x"], "weight": mlp_inputs["scale"]})


@pytest.mark.parametrize("convert", ["export", "script"])
def test_safetensors_weights_with_a_module_factory(builder, mlp_files, mlp, mlp_inputs, tmp_path, convert):
    opts = BuildOptions(options={"module_factory": "builder_models:make_mlp", "input_spec": INPUT_SPEC,
                                 "convert": convert})
    bundle = builder.build(mlp_files["safetensors"], options=opts, workdir=tmp_path)
    assert bundle.signature == SIGNATURE
    assert bundle.metadata["source"] == "safetensors"
    assert bundle.metadata["format"] == (EXPORT if convert == "export" else TORCHSCRIPT)
    _check_predictions(builder, bundle, mlp, mlp_inputs)


def test_safetensors_errors_say_what_is_missing(builder, mlp_files, tmp_path):
    with pytest.raises(BuildError, match="module_factory"):
        builder.build(mlp_files["safetensors"], options=BuildOptions(), workdir=tmp_path)
    with pytest.raises(BuildError, match="'builder_models:nope' cannot be imported"):
        builder.build(mlp_files["safetensors"], options=BuildOptions(options={"module_factory": "builder_models:nope"}),
                      workdir=tmp_path)
    with pytest.raises(BuildError, match="do not fit the module from 'builder_models:make_wide_mlp'"):
        builder.build(mlp_files["safetensors"], workdir=tmp_path, options=BuildOptions(
            options={"module_factory": "builder_models:make_wide_mlp", "input_spec": INPUT_SPEC}))


def test_a_torch_save_pickle_is_refused_without_being_loaded(builder, mlp_files, tmp_path, monkeypatch):
    def no_pickles(*_args, **_kwargs):
        raise AssertionError("torch.load must not be called on an upload")

    monkeypatch.setattr(torch, "load", no_pickles)
    with pytest.raises(BuildError, match=r"pickle.*never loads"):
        builder.build(mlp_files["pickle"], options=BuildOptions(), workdir=tmp_path)


@pytest.mark.parametrize("content", [b"", b"garbage" * 10])
def test_corrupt_files_give_a_build_error(builder, tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(BuildError, match="not a TorchScript archive"):
        builder.build(path, options=BuildOptions(), workdir=tmp_path / "w")
    with pytest.raises(BuildError, match="got object"):
        builder.build(object(), options=BuildOptions(), workdir=tmp_path / "w")
    with pytest.raises(BuildError, match="directory"):
        builder.build(tmp_path, options=BuildOptions(), workdir=tmp_path / "w")


def test_validation_catches_a_wrong_expected_output(builder, mlp_files, mlp, mlp_inputs, tmp_path):
    ref = _reference(mlp, mlp_inputs)
    opts = BuildOptions(sample_input=mlp_inputs, expected_output={"output_0": ref["output_0"],
                                                                  "output_1": ref["output_1"] + 1})
    with pytest.raises(BuildError, match=r"output 'output_1' differs.*max abs error 1\b"):
        builder.build(mlp_files["export"], options=opts, workdir=tmp_path)


def test_predict_rejects_wrong_input_names_and_shapes(export_model, mlp_inputs):
    with pytest.raises(InvalidInput, match="unknown input 'X'") as info:
        export_model.predict({"X": mlp_inputs["x"], "scale": mlp_inputs["scale"]})
    assert info.value.field == "inputs.X"
    with pytest.raises(InvalidInput, match=r"'x'.*\[-1, 4\].*\[5, 3\]"):
        export_model.predict({"x": mlp_inputs["x"][:, :3], "scale": mlp_inputs["scale"]})
    with pytest.raises(InvalidInput, match=r"'x'.*FP32.*BYTES"):
        export_model.predict({"x": np.array([["a"] * 4]), "scale": mlp_inputs["scale"][:1]})
    # Batch sizes that disagree pass the per-input check; the program's own guard catches them.
    with pytest.raises(InvalidInput, match="rejected"):
        export_model.predict({"x": mlp_inputs["x"], "scale": mlp_inputs["scale"][:2]})


def test_predict_converts_float64_and_read_only_arrays(export_model, mlp, mlp_inputs):
    x = mlp_inputs["x"].astype(np.float64)
    x.flags.writeable = False
    out = export_model.predict({"x": x, "scale": mlp_inputs["scale"]})
    np.testing.assert_allclose(out["output_0"], _reference(mlp, mlp_inputs)["output_0"], rtol=1e-5, atol=1e-6)


def test_predict_is_thread_safe(export_model, mlp):
    rng = np.random.default_rng(5)
    batches = [{"x": rng.normal(size=(1 + i % 3, 4)).astype(np.float32),
                "scale": np.full((1 + i % 3, 1), 1 + i, np.float32)} for i in range(48)]
    expected = [_reference(mlp, b)["output_0"] for b in batches]
    start = threading.Barrier(8)

    def work(i):
        start.wait()
        return [export_model.predict(batches[j])["output_0"] for j in range(i, 48, 8)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for i, outs in enumerate(results):
        for j, out in zip(range(i, 48, 8), outs, strict=True):
            np.testing.assert_allclose(out, expected[j], rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(export_bundle, mlp_files, tmp_path):
    with pytest.raises(Unavailable, match=r"'cuda' is not available.*device = 'cpu'"):
        TorchBuilder(TorchConfig()).load(export_bundle.artifact, signature=export_bundle.signature,
                                         options={"device": "cuda"})
    with pytest.raises(BuildError, match="'cuda' is not available"):
        TorchBuilder(TorchConfig(device="cuda")).build(mlp_files["export"], options=BuildOptions(),
                                                       workdir=tmp_path)


def test_config_rejects_unknown_devices():
    with pytest.raises(ValueError, match="device must be"):
        TorchConfig(device="tpu")


# --------------------------------------------------------------------------------------------- module factories
#: A module factory as a user would ship it: its own module, building the MLP whose weights the tests saved.
FACTORY_SOURCE = textwrap.dedent("""
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
""")


@pytest.fixture
def write_package(tmp_path, monkeypatch):
    """``write_package(root, name, init="")``: a package ``name`` with ``model.build`` under ``root``; forgotten
    from sys.modules after the test."""
    written = []

    def write(root, name, init=""):
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(init)
        (root / name / "model.py").write_text(FACTORY_SOURCE)
        written.append(name)
        return root

    yield write
    for name in written:
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[mod]
    importlib.invalidate_caches()


def _factory_options(ref):
    return BuildOptions(options={"module_factory": ref, "input_spec": INPUT_SPEC})


@pytest.mark.parametrize("ref", ["evilpkg.model:build", "os:getcwd", "builder_models:make_mlp"])
def test_a_factory_config_does_not_allow_is_refused_before_anything_is_imported(mlp_files, tmp_path,
                                                                                 write_package, ref):
    marker = tmp_path / "imported"
    write_package(tmp_path / "models", "evilpkg", init=f"open({str(marker)!r}, 'w').close()\n")
    builder = TorchBuilder(TorchConfig(module_factories=["ranker.model:*"], module_paths=["models"]),
                           base_dir=tmp_path)
    with pytest.raises(InvalidInput, match="is not allowed") as info:
        builder.build(mlp_files["safetensors"], options=_factory_options(ref), workdir=tmp_path / "w")
    assert info.value.field == "options.module_factory" and info.value.status == 422
    module = ref.partition(":")[0]
    assert f'[builders.torch] module_factories (e.g. module_factories = ["{module}:*"])' in str(info.value)
    assert "modelyard.module_factories" in str(info.value)  # the other way to allow one: an entry point
    assert not marker.exists() and "evilpkg" not in sys.modules
    assert not (tmp_path / "w").exists()  # refused before anything else was looked at


def test_module_paths_resolve_an_allowed_factory_against_the_config_folder(mlp_files, mlp, mlp_inputs, tmp_path,
                                                                           write_package, monkeypatch):
    write_package(tmp_path / "models", "ranker_mp")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the server's working directory has nothing to do with it
    path_before = list(sys.path)
    builder = TorchBuilder(TorchConfig(module_factories=["ranker_mp.model:*"], module_paths=["models"]),
                           base_dir=tmp_path)
    bundle = builder.build(mlp_files["safetensors"], options=_factory_options("ranker_mp.model:build"),
                           workdir=tmp_path / "w")
    assert bundle.metadata["source"] == "safetensors"
    _check_predictions(builder, bundle, mlp, mlp_inputs)
    assert sys.path == path_before  # the folder was on the path for the import only


def test_without_module_paths_an_allowed_factory_outside_the_path_cannot_be_imported(mlp_files, tmp_path,
                                                                                      write_package):
    write_package(tmp_path / "models", "ranker_np")
    builder = TorchBuilder(TorchConfig(module_factories=["ranker_np.model:*"]), base_dir=tmp_path)
    with pytest.raises(BuildError, match=r"'ranker_np\.model:build' cannot be imported"):
        builder.build(mlp_files["safetensors"], options=_factory_options("ranker_np.model:build"),
                      workdir=tmp_path / "w")


def test_an_installed_entry_point_names_a_factory(mlp_files, mlp, mlp_inputs, tmp_path, write_package,
                                                  monkeypatch):
    site = write_package(tmp_path / "site", "ranker_ep")
    dist = site / "ranker_ep_dist-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ranker-ep-dist\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[modelyard.module_factories]\nranker = ranker_ep.model:build\n")
    monkeypatch.syspath_prepend(str(site))
    builder = TorchBuilder(TorchConfig())  # no module_factories patterns at all
    bundle = builder.build(mlp_files["safetensors"], options=_factory_options("ranker"), workdir=tmp_path / "w")
    _check_predictions(builder, bundle, mlp, mlp_inputs)
    with pytest.raises(InvalidInput, match=r"'nope' is not an installed entry point.*installed: ranker\b") as info:
        builder.build(mlp_files["safetensors"], options=_factory_options("nope"), workdir=tmp_path / "w2")
    assert info.value.field == "options.module_factory"


@pytest.mark.parametrize(("ref", "error", "pattern"), [
    ("builder_models:np.zeros", BuildError, "names a module"),  # allowed by the glob, but walks into numpy
    ("builder_models:_private", InvalidInput, "private attribute"),
    ("builder_models:make_mlp.__globals__", InvalidInput, "private attribute"),
    ("not a reference", InvalidInput, "neither 'pkg.module:callable' nor an entry point"),
    ("pkg..mod:f", InvalidInput, "dotted names"),
    (42, InvalidInput, "got 42"),
])
def test_a_factory_reference_stays_inside_the_module_it_names(builder, mlp_files, tmp_path, ref, error, pattern):
    with pytest.raises(error, match=pattern):
        builder.build(mlp_files["safetensors"], options=_factory_options(ref), workdir=tmp_path)


def test_os_abort_as_a_module_factory_is_refused_not_run(mlp_files, tmp_path):
    """Built in this process, without a build process around it: were the check missing, os.abort would kill
    the interpreter (exit -6) instead of printing the refusal."""
    script = textwrap.dedent(f"""
        from pathlib import Path
        from modelyard.errors import InvalidInput
        from modelyard.types import BuildOptions
        from modelyard_plugins.torch_builder import TorchConfig
        from modelyard_plugins.torch_builder.builder import TorchBuilder

        options = BuildOptions(options={{"module_factory": "os:abort", "input_spec": {INPUT_SPEC!r}}})
        try:
            TorchBuilder(TorchConfig()).build(Path({str(mlp_files["safetensors"])!r}), options=options,
                                              workdir=Path({str(tmp_path / "w")!r}))
        except InvalidInput as exc:
            print("refused:", exc.field)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused: options.module_factory"


# --------------------------------------------------------------------------------------------- bounds
@pytest.mark.parametrize("threads", [0, -1, max_threads() + 1, 10**6, True, "2", 2.0])
def test_thread_counts_are_bounded_in_config_and_load_options(export_bundle, threads):
    if isinstance(threads, int) and not isinstance(threads, bool):
        with pytest.raises(ValueError, match=rf"threads: expected an integer from 1 to {max_threads()}"):
            TorchConfig(threads=threads)
    with pytest.raises(InvalidInput, match=rf"threads: expected an integer from 1 to {max_threads()}") as info:
        TorchBuilder(TorchConfig()).load(export_bundle.artifact, signature=export_bundle.signature,
                                         options={"threads": threads})
    assert info.value.field == "threads"


def test_the_largest_thread_count_is_accepted(export_bundle):
    assert TorchConfig(threads=max_threads()).threads == max_threads()


@pytest.mark.parametrize("device", ["cuda:1234", "tpu", 0, None])
def test_load_options_refuse_unknown_devices(export_bundle, device):
    with pytest.raises(InvalidInput, match="device: expected 'cpu', 'cuda' or 'cuda:N'") as info:
        TorchBuilder(TorchConfig()).load(export_bundle.artifact, signature=export_bundle.signature,
                                         options={"device": device})
    assert info.value.field == "device"


def test_torch_archives_are_held_to_the_archive_limits(mlp_files, tmp_path):
    path = mlp_files["export"]
    assert sniff_format(path) == EXPORT
    with pytest.raises(BuildError, match=r"over the limit \(max_archive_entries = 3\)"):
        sniff_format(path, limits=ArchiveLimits(max_entries=3))
    with pytest.raises(BuildError, match=r"over the limit \(max_archive_bytes = 100\)"):
        TorchBuilder(TorchConfig(), archive_limits=ArchiveLimits(max_bytes=100)).build(
            path, options=BuildOptions(), workdir=tmp_path)
