"""``modelyard.client`` without a network: settings from the environment, how problem answers become
``modelyard.errors`` exceptions, and the SDK over the app in-process (an ASGI transport) — the socket-level
tests live in ``tests/e2e/test_server_socket.py``."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import numpy as np
import pytest
from litestar.testing import TestClient
from modelyard import errors
from modelyard.client import Client, error_from_response
from server_models import features, ort_outputs


def _problem(status: int, kind: str, detail: str = "it went wrong", headers: dict[str, str] | None = None,
             **extra: Any) -> httpx.Response:
    body = {"type": f"urn:modelyard:problem:{kind}", "title": "t", "status": status, "detail": detail, **extra}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json", **(headers or {})})


@pytest.mark.parametrize(("status", "kind", "cls"), [
    (404, "not-found", errors.NotFound), (422, "invalid-input", errors.InvalidInput),
    (422, "build-error", errors.BuildError), (409, "conflict", errors.Conflict),
    (401, "unauthenticated", errors.Unauthenticated), (403, "forbidden", errors.Forbidden),
    (503, "unavailable", errors.Unavailable), (400, "codec-error", errors.InvalidInput),
    (413, "content-too-large", errors.InvalidInput), (500, "internal-error", errors.ModelyardError),
    (418, "teapot", errors.ModelyardError),
])
def test_problems_become_modelyard_errors(status: int, kind: str, cls: type[Exception]) -> None:
    exc = error_from_response(_problem(status, kind, detail="the detail"))
    assert type(exc) is cls
    assert str(exc) == "the detail" and exc.status == status


def test_invalid_input_keeps_field_and_input() -> None:
    exc = error_from_response(_problem(422, "invalid-input", field="inputs.x", input="x"))
    assert isinstance(exc, errors.InvalidInput) and exc.field == "inputs.x" and exc.extra["input"] == "x"


def test_overloaded_keeps_retry_after() -> None:
    exc = error_from_response(_problem(429, "overloaded", retry_after=0.25, headers={"Retry-After": "1"}))
    assert isinstance(exc, errors.Overloaded) and exc.retry_after == 0.25
    bare = error_from_response(httpx.Response(429, text="slow down", headers={"Retry-After": "7"}))
    assert isinstance(bare, errors.Overloaded) and bare.retry_after == 7.0


def test_non_problem_answers_still_raise_with_their_text() -> None:
    exc = error_from_response(httpx.Response(502, text="<html>bad gateway</html>"))
    assert type(exc) is errors.ModelyardError and exc.status == 502 and "bad gateway" in str(exc)


def test_url_and_api_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"name": "m"})

    monkeypatch.setenv("MODELYARD_SERVER", "server.example:9000")
    monkeypatch.setenv("MODELYARD_API_KEY", "k-123")
    with Client(transport=httpx.MockTransport(handler)) as client:
        assert client.get_model("m") == {"name": "m"}
    assert str(seen[0].url) == "http://server.example:9000/api/v1/models/m"
    assert seen[0].headers["authorization"] == "Bearer k-123"

    monkeypatch.delenv("MODELYARD_SERVER")
    with pytest.raises(errors.InvalidInput, match="MODELYARD_SERVER"):
        Client()


def test_refs_map_to_routes() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(200, json={})

    with Client("http://h", transport=httpx.MockTransport(handler)) as client:
        client.get_version("churn")
        client.get_version("churn:3")
        client.get_version("churn@production")
        client.get_version("churn", 2)
        with pytest.raises(errors.InvalidInput):
            client.get_version("churn:x")
    assert paths == ["/api/v1/models/churn/versions/latest", "/api/v1/models/churn/versions/3",
                     "/api/v1/models/churn/aliases/production", "/api/v1/models/churn/versions/2"]


def test_sdk_over_the_app_in_process(client: TestClient, deployed: str, model_path) -> None:
    """The SDK against the real app through an in-process transport (the same requests as over a socket)."""
    class InProcess(httpx.BaseTransport):  # Litestar's test transport has no close()
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return client._transport.handle_request(request)  # type: ignore[attr-defined]

    with Client("http://testserver", transport=InProcess()) as sdk:
        x = features(4)
        expected = ort_outputs(model_path, x)
        for binary in (True, False):
            out = sdk.predict(deployed, {"x": x}, binary=binary)
            np.testing.assert_allclose(out["probability"], expected["probability"], rtol=1e-6)
            np.testing.assert_array_equal(out["label"], expected["label"])
            out["label"][0, 0] = 5  # outputs are ordinary writable arrays
        with pytest.raises(errors.InvalidInput) as info:
            sdk.predict(deployed, {"x": x[:, :3]})
        assert info.value.field == "inputs.x" and info.value.status == 422
        with pytest.raises(errors.NotFound):
            sdk.predict(deployed, {"x": x}, version=9)
        assert sdk.ready() is True
        assert sdk.model_metadata(deployed)["platform"] == "onnx"


def test_importing_modelyard_does_not_import_httpx() -> None:
    code = "import sys, modelyard, modelyard.platform; print('httpx' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
