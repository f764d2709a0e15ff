"""Every flavor end to end over a real socket: a tiny model built in the session is uploaded with the SDK
(multipart; a SavedModel directory is zipped by the client), deployed through the API, and answers
``POST /v2/models/{name}/infer`` in JSON and with binary tensors — from raw httpx and from the standard Triton
client — with its framework's own outputs. Metadata lists the signature; a wrong input name, dtype or shape is a
4xx problem+json naming the input. sklearn pickles load only with ``allow_pickle`` and are flagged in the audit
log; without it the upload is refused (422) and never unpickled. A TorchScript archive or safetensors weights — which
carry no input types — register with build options (``options``: ``input_spec``, ``module_factory``), and a
validation sample with the outputs it must produce travels with the upload.

One server with every flavor serves the module (``[builders.sklearn] allow_pickle = true``); the refusal runs
against the harness's default-config server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from flavor_models import (
    MLP_INPUT_SPEC,
    FlavorCase,
    PickleBomb,
    fit_logreg,
    onnx_case,
    running_server,
    sklearn_case,
    tensorflow_case,
    torch_cases,
)
from modelyard import errors
from modelyard.bundles import numpy_dtype
from modelyard.client import Client
from modelyard.converter import to_json
from modelyard.protocol.v2 import HEADER_LENGTH_HEADER, decode_response, encode_request
from server_harness import server_url  # noqa: F401  (the default-config server: no allow_pickle)

PROBLEM_JSON = "application/problem+json"
#: The flavors every generic test runs on; ``torch-export`` is a ``torch.export`` ``.pt2`` program.
FLAVORS = ["onnx", "torch-export", "tensorflow", "sklearn"]
_NEEDS = {"torch-export": "torch", "torch-torchscript": "torch", "torch-safetensors": "torch",
          "tensorflow": "tensorflow", "sklearn": "sklearn"}


def _require(module: str) -> None:
    """Skip (with the reason) when a framework cannot be imported; tensorflow can fail with more than ImportError."""
    try:
        __import__(module)
    except Exception as exc:
        pytest.skip(f"{module} is not importable: {type(exc).__name__}: {exc}")


class Yard:
    """The module's server and its models: each case is built, registered and deployed once, on first use."""

    def __init__(self, url: str, base: Path) -> None:
        self.url = url
        self.base = base
        self._built: dict[str, FlavorCase] = {}
        self._deployed: dict[str, FlavorCase | Exception] = {}

    def case(self, key: str) -> FlavorCase:
        """The built model for ``key`` (``onnx``, ``torch-export``, ``torch-torchscript``, …), without registering."""
        if key in _NEEDS:
            _require(_NEEDS[key])
        if key not in self._built:
            if key.startswith("torch-"):
                self._built.update({f"torch-{k}": c for k, c in torch_cases(self.base).items()})
            else:
                self._built[key] = {"onnx": onnx_case, "tensorflow": tensorflow_case,
                                    "sklearn": sklearn_case}[key](self.base)
        return self._built[key]

    def deployed(self, key: str) -> FlavorCase:
        """The case registered through the SDK (a streamed upload) and deployed through the API; a failure is
        remembered, so one broken flavor fails its tests once each instead of retrying the upload."""
        case = self.case(key)
        outcome = self._deployed.get(key)
        if outcome is None:
            try:
                with Client(self.url) as client:
                    version = client.register(case.name, case.source, flavor=case.flavor)
                    assert (version.number, version.flavor) == (1, case.flavor)
                    deployment = client.deploy(case.name)
                    assert (deployment.state, deployment.version) == ("ready", 1)
                outcome = case
            except Exception as exc:
                outcome = exc
            self._deployed[key] = outcome
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Yard]:
    """One server with every flavor installed and sklearn pickles allowed, on a real 127.0.0.1 socket."""
    data = tmp_path_factory.mktemp("flavors-data")
    config = {"platform": {"data_dir": str(data), "log_level": "warning"},
              "builders": {"sklearn": {"allow_pickle": True}, "torch": {"module_factories": ["flavor_models:*"]}}}
    with running_server(config) as url:
        yield Yard(url, tmp_path_factory.mktemp("flavors-models"))


@pytest.fixture(params=FLAVORS)
def case(request: pytest.FixtureRequest, yard: Yard) -> FlavorCase:
    """Each flavor's model, deployed on the module's server."""
    return yard.deployed(request.param)


# ------------------------------------------------------------------------------------------------ helpers
def _infer(url: str, name: str, inputs: dict[str, np.ndarray], *, binary: bool,
           outputs: list[str] | None = None) -> httpx.Response:
    body, headers = encode_request(inputs, binary=binary, binary_outputs=binary, outputs=outputs)
    return httpx.post(f"{url}/v2/models/{name}/infer", content=body, headers=headers, timeout=30)


def _assert_matches(outputs: dict[str, np.ndarray], case: FlavorCase) -> None:
    """Outputs named, typed and valued as the framework's own (floats within the case's tolerance)."""
    assert set(outputs) == set(case.expected)
    for meta in case.outputs_meta:
        got, want = outputs[meta["name"]], case.expected[meta["name"]]
        assert got.dtype == numpy_dtype(meta["datatype"]), meta["name"]
        assert got.shape == want.shape, meta["name"]
        if got.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol, err_msg=meta["name"])
        else:
            np.testing.assert_array_equal(got, want, err_msg=meta["name"])


def _header(response: httpx.Response) -> dict[str, Any]:
    """The JSON part of an inference answer (all of it, or the part before the binary tensors)."""
    length = response.headers.get(HEADER_LENGTH_HEADER)
    return json.loads(response.content[: int(length)] if length else response.content)


def _assert_problem(response: httpx.Response, name: str) -> dict[str, Any]:
    """A 4xx RFC 9457 answer that names the input ``name``."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == response.status_code
    assert body["input"] == name and repr(name) in body["detail"], body
    return body


# ------------------------------------------------------------------------------------------------ metadata
def test_registered_version_and_v2_metadata_list_the_signature(yard: Yard, case: FlavorCase) -> None:
    with Client(yard.url) as client:
        version = to_json(client.get_version(case.name))
    assert version["flavor"] == case.flavor
    assert version["signature"] == {"inputs": case.inputs_meta, "outputs": case.outputs_meta}
    assert version["metadata"]["validation"]["ok"] is True

    meta = httpx.get(f"{yard.url}/v2/models/{case.name}", timeout=10)
    assert meta.status_code == 200
    assert meta.json() == {"name": case.name, "versions": ["1"], "platform": case.flavor,
                           "inputs": case.inputs_meta, "outputs": case.outputs_meta}
    assert httpx.get(f"{yard.url}/v2/models/{case.name}/versions/1/ready", timeout=10).status_code == 200
    assert httpx.get(f"{yard.url}/v2/models/{case.name}/versions/2", timeout=10).status_code == 404


# ------------------------------------------------------------------------------------------------ inference
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_answers_the_frameworks_own_outputs(yard: Yard, case: FlavorCase, binary: bool) -> None:
    response = _infer(yard.url, case.name, dict(case.inputs), binary=binary)
    assert response.status_code == 200, response.text
    if binary:
        assert response.headers["content-type"] == "application/octet-stream"
        assert int(response.headers[HEADER_LENGTH_HEADER]) < len(response.content)
    else:
        assert response.headers["content-type"].startswith("application/json")
        assert HEADER_LENGTH_HEADER not in response.headers
    header = _header(response)
    assert (header["model_name"], header["model_version"]) == (case.name, "1")
    rows = len(next(iter(case.inputs.values())))
    for out in header["outputs"]:  # each tensor carries the signature's datatype and the batch's shape
        meta = next(m for m in case.outputs_meta if m["name"] == out["name"])
        assert out["datatype"] == meta["datatype"]
        assert out["shape"] == [rows, *meta["shape"][1:]]
        assert ("binary_data_size" in out.get("parameters", {})) is binary and ("data" in out) is not binary
    decoded = decode_response(response.content, header_length=response.headers.get(HEADER_LENGTH_HEADER))
    _assert_matches(decoded.outputs, case)


def test_infer_one_requested_output_per_row(yard: Yard, case: FlavorCase) -> None:
    """Single-row requests with one named output: the answer is that row of the framework's answer, only."""
    wanted = [m["name"] for m in case.outputs_meta if m["datatype"].startswith("FP")][-1]
    for row in (0, 2):
        inputs = {k: v[row:row + 1] for k, v in case.inputs.items()}
        response = _infer(yard.url, case.name, inputs, binary=True, outputs=[wanted])
        assert response.status_code == 200, response.text
        outputs = decode_response(response.content,
                                  header_length=response.headers.get(HEADER_LENGTH_HEADER)).outputs
        assert list(outputs) == [wanted]
        np.testing.assert_allclose(outputs[wanted], case.expected[wanted][row:row + 1], rtol=case.rtol,
                                   atol=case.atol)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_triton_client(yard: Yard, case: FlavorCase, binary: bool) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(yard.url.removeprefix("http://"))
    try:
        assert client.is_model_ready(case.name) and client.is_model_ready(case.name, "1")
        meta = client.get_model_metadata(case.name)
        assert (meta["platform"], meta["inputs"], meta["outputs"]) == (case.flavor, case.inputs_meta,
                                                                       case.outputs_meta)
        inputs = []
        for spec in case.inputs_meta:
            array = case.inputs[spec["name"]]
            inp = triton.InferInput(spec["name"], list(array.shape), spec["datatype"])
            inp.set_data_from_numpy(array, binary_data=binary)
            inputs.append(inp)
        outputs = [triton.InferRequestedOutput(m["name"], binary_data=binary) for m in case.outputs_meta]
        result = client.infer(case.name, inputs, outputs=outputs, request_id=f"{case.name}-{binary}")
        assert result.get_response()["id"] == f"{case.name}-{binary}"
        _assert_matches({m["name"]: result.as_numpy(m["name"]) for m in case.outputs_meta}, case)
    finally:
        client.close()


# ------------------------------------------------------------------------------------------------ bad inputs
def _bad_requests(case: FlavorCase) -> dict[str, tuple[str, dict[str, np.ndarray], list[str] | None]]:
    """Requests that must be refused, each with the input (or output) name the refusal must carry."""
    inputs = dict(case.inputs)
    numeric = next(m["name"] for m in case.inputs_meta if m["datatype"] != "BYTES")
    array = inputs[numeric]
    first = case.inputs_meta[0]["name"]
    renamed = {("bogus" if k == first else k): v for k, v in inputs.items()}
    as_text = np.array([str(v).encode() for v in array.ravel()], dtype=object).reshape(array.shape)
    bad = {
        "unknown-name": ("bogus", renamed, None),
        "narrower": (numeric, {**inputs, numeric: np.ascontiguousarray(array[:, :-1])}, None),
        "extra-axis": (numeric, {**inputs, numeric: array[None]}, None),
        "bytes-for-numbers": (numeric, {**inputs, numeric: as_text}, None),
        "unknown-output": ("nope", inputs, ["nope"]),
    }
    if len(inputs) > 1:
        last = case.inputs_meta[-1]["name"]
        bad["missing"] = (last, {k: v for k, v in inputs.items() if k != last}, None)
    text = next((m["name"] for m in case.inputs_meta if m["datatype"] == "BYTES"), None)
    if text is not None:
        bad["numbers-for-bytes"] = (text, {**inputs, text: np.arange(len(inputs[text]), dtype=np.float32)}, None)
    return bad


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_wrong_inputs_are_4xx_problems_naming_the_input(yard: Yard, case: FlavorCase, binary: bool) -> None:
    for kind, (name, inputs, outputs) in _bad_requests(case).items():
        response = _infer(yard.url, case.name, inputs, binary=binary, outputs=outputs)
        body = _assert_problem(response, name)
        assert body["status"] == 422, (kind, body)
    # The deployment still answers correctly afterwards.
    assert _infer(yard.url, case.name, dict(case.inputs), binary=binary).status_code == 200


def test_sdk_raises_invalid_input_naming_the_input(yard: Yard, case: FlavorCase) -> None:
    name, inputs, _ = _bad_requests(case)["narrower"]
    with Client(yard.url) as client, pytest.raises(errors.InvalidInput) as info:
        client.predict(case.name, inputs)
    assert info.value.status == 422 and info.value.field == f"inputs.{name}"


# ------------------------------------------------------------------------------------------------ pickles
def test_sklearn_pickle_is_loaded_only_with_allow_pickle_and_audited(yard: Yard) -> None:
    sklearn = yard.deployed("sklearn")
    onnx = yard.deployed("onnx")
    with Client(yard.url) as client:
        assert client.get_version(sklearn.name).metadata["pickle_loaded"] is True
        events = {c.name: [to_json(e) for e in client.audit(resource=f"models/{c.name}/versions/1").items]
                  for c in (sklearn, onnx)}
    raw = httpx.get(f"{yard.url}/api/v1/audit", params={"resource": f"models/{sklearn.name}/versions/1"},
                    timeout=10).json()["items"]
    assert raw == events[sklearn.name]
    flags = {}
    for name, items in events.items():
        (event,) = [e for e in items if e["action"] == "models:register"]
        assert event["outcome"] == "ok" and event["details"]["flavor"] in ("sklearn", "onnx")
        flags[name] = event["details"]["pickle_loaded"]
    assert flags == {sklearn.name: True, onnx.name: False}


def test_a_pickle_is_refused_without_allow_pickle(server_url: str, tmp_path: Path) -> None:  # noqa: F811
    """The default config refuses a pickle/joblib upload with a 422 problem, before unpickling anything."""
    import joblib

    _require("sklearn")
    marker = tmp_path / "unpickled"
    bomb = tmp_path / "bomb.joblib"
    joblib.dump(PickleBomb(marker), bomb)
    with bomb.open("rb") as fh:
        response = httpx.post(f"{server_url}/api/v1/models", data={"name": "pickled", "flavor": "sklearn"},
                              files={"file": ("bomb.joblib", fh)}, timeout=60)
    assert response.status_code == 422 and response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["type"] == "urn:modelyard:problem:build-error" and body["status"] == 422
    assert "allow_pickle = true" in body["detail"]
    assert not marker.exists(), "the server unpickled the upload"

    estimator = tmp_path / "logreg.joblib"
    joblib.dump(fit_logreg(), estimator)
    with Client(server_url) as client:
        with pytest.raises(errors.BuildError, match=r"\[builders\.sklearn\] allow_pickle = true") as info:
            client.register("pickled", estimator, flavor="sklearn")
        assert info.value.status == 422
        with pytest.raises(errors.NotFound):
            client.get_model("pickled")


def test_a_refused_pickle_is_audited(server_url: str, tmp_path: Path) -> None:  # noqa: F811
    import joblib

    _require("sklearn")
    path = tmp_path / "logreg.joblib"
    joblib.dump(fit_logreg(), path)
    with Client(server_url) as client:
        with pytest.raises(errors.BuildError):
            client.register("refused", path, flavor="sklearn")
        events = [e for e in client.audit(limit=1000).items
                  if e.action == "models:register" and "refused" in e.resource]
    assert [e.outcome for e in events] == ["error"]


# ------------------------------------------------------------------------------------------------ torch uploads
@pytest.mark.parametrize("kind", ["torchscript", "safetensors"])
def test_torch_uploads_that_need_build_options(yard: Yard, kind: str) -> None:
    case = yard.case(f"torch-{kind}")
    options: dict[str, Any] = {"input_spec": MLP_INPUT_SPEC}
    if kind == "safetensors":
        options["module_factory"] = "flavor_models:make_mlp"  # importable in the server: it runs in this process
    with case.source.open("rb") as fh:
        response = httpx.post(f"{yard.url}/api/v1/models",
                              data={"name": case.name, "flavor": "torch", "options": json.dumps(options)},
                              files={"file": (case.source.name, fh)}, timeout=120)
    assert response.status_code == 201, response.text
    with Client(yard.url) as client:
        client.deploy(case.name)
        _assert_matches(client.predict(case.name, dict(case.inputs)), case)


def test_torchscript_samples_and_expected_outputs_over_http(yard: Yard) -> None:
    """The SDK sends build options and numpy samples (as nested lists); the build compares the outputs promised,
    and a wrong promise is a 422 build-error problem naming the output, with nothing recorded."""
    case = yard.case("torch-torchscript")
    name = f"{case.name}-validated"
    options = {"input_spec": MLP_INPUT_SPEC}
    wrong = {"output_1": (case.expected["output_1"] + 1).tolist()}
    with case.source.open("rb") as fh:
        response = httpx.post(f"{yard.url}/api/v1/models",
                              data={"name": name, "flavor": "torch", "options": json.dumps(options),
                                    "sample_input": json.dumps({k: v.tolist() for k, v in case.inputs.items()}),
                                    "expected_output": json.dumps(wrong)},
                              files={"file": (case.source.name, fh)}, timeout=120)
    assert response.status_code == 422 and response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["type"] == "urn:modelyard:problem:build-error"
    assert "output 'output_1' differs from the expected output" in body["detail"], body
    with Client(yard.url) as client:
        with pytest.raises(errors.NotFound):
            client.get_model(name)
        version = to_json(client.register(name, case.source, flavor="torch", options=options,
                                          sample_input=dict(case.inputs), expected_output=dict(case.expected)))
        assert version["metadata"]["validation"]["compared_outputs"] == ["output_0", "output_1"]
        assert version["signature"] == {"inputs": case.inputs_meta, "outputs": case.outputs_meta}
        client.deploy(name)
        _assert_matches(client.predict(name, dict(case.inputs)), case)
