"""``modelyard models register … --option/--options/--sample-input/--expected-output``, embedded and against a
real ``modelyard serve`` (``--server``): a TorchScript archive — which records no input types — registers with
``--option input_spec=…``, validates against a sample and expected outputs, deploys and predicts what torch
computes; wrong expected outputs fail the build naming the output; malformed values are usage errors (exit 2)
before any work."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_modes import Cli, cli_in_both_modes  # noqa: F401  (the fixture "cli": embedded and --server)
from hypothesis import given
from hypothesis import strategies as st
from modelyard.cli import EXIT_FAILED, EXIT_USAGE
from modelyard.cli.models import build_options, read_tensors
from modelyard.errors import InvalidInput

SPEC = [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]


class Script:
    """A TorchScript 4 → 2 linear layer on disk with a sample (``x.npy``), its torch outputs and files of them."""

    def __init__(self, base: Path) -> None:
        import torch

        torch.manual_seed(0)
        module = torch.nn.Linear(4, 2).eval()
        self.path = base / "linear.pt"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, and still what users ship
            torch.jit.save(torch.jit.script(module), str(self.path))
        self.x = np.random.default_rng(4).normal(size=(3, 4)).astype(np.float32)
        with torch.inference_mode():
            self.y = module(torch.from_numpy(self.x)).numpy()
        self.x_npy = base / "x.npy"
        np.save(self.x_npy, self.x)
        self.expected_json = base / "expected.json"
        self.expected_json.write_text(json.dumps({"y": self.y.tolist()}))
        self.wrong_json = base / "wrong.json"
        self.wrong_json.write_text(json.dumps({"y": (self.y + 1).tolist()}))
        self.options_json = base / "options.json"
        self.options_json.write_text(json.dumps({"input_spec": SPEC, "output_names": ["wrong-name"]}))


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Script:
    """The TorchScript model, built once per module."""
    pytest.importorskip("torch")
    return Script(tmp_path_factory.mktemp("torchscript"))


# ------------------------------------------------------------------------------------------------ parsing
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                     | st.text(), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(), c, max_size=3),
                     max_leaves=8)


@given(value=_json)
def test_an_option_value_is_json_when_it_parses(value: Any) -> None:
    assert build_options([f"k={json.dumps(value)}"], None) == {"k": value}


@given(text=st.text())
def test_an_option_value_is_a_string_when_it_is_not_json(text: str) -> None:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        assert build_options([f"k={text}"], None) == {"k": text}
    else:
        assert build_options([f"k={text}"], None) == {"k": json.loads(text)}


def test_option_pairs_overlay_the_options_document(tmp_path: Path) -> None:
    doc = tmp_path / "opts.json"
    doc.write_text('{"a": 1, "b": [1, 2]}')
    assert build_options(["b=pkg.mod:make", "c=true"], f"@{doc}") == {"a": 1, "b": "pkg.mod:make", "c": True}
    assert build_options(None, '{"a": {"n": 2}}') == {"a": {"n": 2}}
    for bad in ("[1, 2]", "{nope", f"@{tmp_path / 'absent.json'}"):
        with pytest.raises(InvalidInput) as info:
            build_options(None, bad)
        assert info.value.field == "options"
    with pytest.raises(InvalidInput, match="KEY=VALUE"):
        build_options(["no-equals-sign"], None)


def test_tensor_values_in_every_form(tmp_path: Path) -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([[1, 2]], dtype=np.int32)
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "both.npz", a=a, b=b)
    (tmp_path / "t.json").write_text('{"a": [[1, 2]], "b": [3]}')
    (tmp_path / "b.json").write_text("[[5, 6]]")

    def read(*values: str) -> dict[str, np.ndarray]:
        out = read_tensors(list(values), option="--sample-input")
        assert out is not None
        return out

    assert read_tensors(None, option="--sample-input") is None
    got = read(f"@{tmp_path / 'a.npy'}")  # a .npy is one array named after its file, dtype kept
    assert list(got) == ["a"] and got["a"].dtype == np.float32 and np.array_equal(got["a"], a)
    got = read(f"@{tmp_path / 'both.npz'}")
    assert sorted(got) == ["a", "b"] and got["b"].dtype == np.int32
    got = read(f"renamed=@{tmp_path / 'a.npy'}", f"b=@{tmp_path / 'b.json'}", 'c=[["s", "t"]]')
    assert sorted(got) == ["b", "c", "renamed"] and got["b"].tolist() == [[5, 6]] and got["c"].dtype.kind == "U"
    assert read('{"a": [[1.5]], "b": [true]}')["b"].dtype == np.bool_
    assert read(f"@{tmp_path / 't.json'}")["a"].tolist() == [[1, 2]]

    for bad in ("just-text", "[1, 2]", "x=not json", '{"x": [[1], [2, 3]]}', '{"x": [1, null]}',
                f"@{tmp_path / 'absent.npy'}", "=[1]"):
        with pytest.raises(InvalidInput) as info:
            read(bad)
        assert info.value.field == "sample_input", bad
    with pytest.raises(InvalidInput, match="'a' is given twice"):
        read(f"@{tmp_path / 'a.npy'}", f"@{tmp_path / 'both.npz'}")


def _flow(run: Cli, script: Script) -> None:
    """The same commands whatever ``run`` talks to."""
    spec = json.dumps(SPEC)
    # Without input types the build is refused (the builder's own message, exit 1) and nothing is recorded.
    refused = run("models", "register", "lin", str(script.path), "--flavor", "torch", code=EXIT_FAILED)
    assert "options['input_spec']" in refused.stderr
    run("models", "show", "lin", code=EXIT_FAILED)

    version = json.loads(run("models", "register", "lin", str(script.path), "--flavor", "torch",
                             "--option", f"input_spec={spec}", "--option", 'output_names=["y"]',
                             "--sample-input", f"@{script.x_npy}", "--expected-output", f"@{script.expected_json}",
                             "--json").stdout)
    assert version["version"] == 1 and version["signature"]["inputs"] == SPEC
    assert [o["name"] for o in version["signature"]["outputs"]] == ["y"]
    assert version["metadata"]["validation"] == {**version["metadata"]["validation"], "ok": True,
                                                 "input": "sample", "compared_outputs": ["y"]}

    # --option keys win over --options; NAME=@file.npy names a .npy explicitly.
    wrong = run("models", "register", "lin", str(script.path), "--flavor", "torch", "--options",
                f"@{script.options_json}", "--option", 'output_names=["y"]', "--sample-input", f"x=@{script.x_npy}",
                "--expected-output", f"@{script.wrong_json}", code=EXIT_FAILED)
    assert "output 'y' differs from the expected output" in wrong.stderr
    assert json.loads(run("models", "show", "lin", "--json").stdout)["versions"]["total"] == 1

    assert json.loads(run("deploy", "lin", "--json").stdout)["state"] == "ready"
    out = json.loads(run("predict", "lin", "--input", json.dumps({"x": script.x.tolist()}), "--json").stdout)
    np.testing.assert_allclose(out["y"], script.y, rtol=1e-5, atol=1e-6)
    run("undeploy", "lin")

    # Malformed values are usage errors before anything is built or uploaded.
    for bad in (("--options", "[1]"), ("--sample-input", "nonsense"), ("--expected-output", '{"y": [[1], [2, 3]]}'),
                ("--sample-input", "@/nonexistent/x.npy"), ("--option", "no-equals")):
        result = run("models", "register", "lin", str(script.path), "--flavor", "torch", *bad, code=EXIT_USAGE)
        assert result.stderr.startswith("error: ") and bad[0] in result.stderr, (bad, result.stderr)
    assert json.loads(run("models", "show", "lin", "--json").stdout)["versions"]["total"] == 1


def test_embedded_and_against_a_server(cli: Cli, script: Script) -> None:
    _flow(cli, script)
