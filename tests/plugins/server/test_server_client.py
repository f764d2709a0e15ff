"""``modelyard.client`` without a network: settings from the environment, how problem answers become
``modelyard.errors`` exceptions (problem types defined once, in ``modelyard.errors``), and the SDK over the app
in-process (an ASGI transport), returning the very records the Platform returns — the socket-level tests live in
``tests/e2e/test_server_socket.py``."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import numpy as np
import pytest
from litestar.testing import TestClient
from modelyard import Platform, errors
from modelyard.api import PlatformAPI
from modelyard.client import AsyncClient, Client, error_from_response
from modelyard.converter import to_json
from modelyard.types import ArtifactRef, AuditEvent, Deployment, Model, ModelVersion, Page, ServingState
from server_models import features, ort_outputs

VERSION = ModelVersion(model="churn", number=3, flavor="onnx", artifact=ArtifactRef(digest="ab" * 32, size=9))


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
    assert error_from_response(_problem(429, "overloaded", retry_after=0)).retry_after == 0.0
    assert error_from_response(httpx.Response(429, text="slow down")).retry_after == 1.0  # no figure: a second
    quota = error_from_response(_problem(429, "quota-exceeded", headers={"Retry-After": "3600"}))
    assert isinstance(quota, errors.QuotaExceeded) and quota.retry_after == 3600.0
    assert error_from_response(_problem(429, "quota-exceeded")).retry_after is None  # not known


def test_non_problem_answers_still_raise_with_their_text() -> None:
    exc = error_from_response(httpx.Response(502, text="<html>bad gateway</html>"))
    assert type(exc) is errors.ModelyardError and exc.status == 502 and "bad gateway" in str(exc)


def test_url_and_api_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=to_json(Model(name="m")))

    monkeypatch.setenv("MODELYARD_SERVER", "server.example:9000")
    monkeypatch.setenv("MODELYARD_API_KEY", "k-123")
    with Client(transport=httpx.MockTransport(handler)) as client:
        assert client.get_model("m").name == "m"
    assert str(seen[0].url) == "http://server.example:9000/api/v1/models/m"
    assert seen[0].headers["authorization"] == "Bearer k-123"

    monkeypatch.delenv("MODELYARD_SERVER")
    with pytest.raises(errors.InvalidInput, match="MODELYARD_SERVER"):
        Client()


def test_refs_map_to_routes() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(200, json=to_json(VERSION))

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
    with Client("http://testserver", transport=_in_process(client)) as sdk:
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


def _in_process(client: TestClient) -> httpx.BaseTransport:
    class InProcess(httpx.BaseTransport):  # Litestar's test transport has no close()
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return client._transport.handle_request(request)  # type: ignore[attr-defined]

    return InProcess()


def test_the_sdk_returns_the_records_the_platform_returns(client: TestClient, platform: Platform,
                                                          deployed: str) -> None:
    with Client("http://testserver", transport=_in_process(client)) as sdk:
        assert sdk.registry is sdk  # the registry's verbs, as on platform.registry
        assert sdk.get_version(deployed) == platform.registry.get_version(deployed)
        assert sdk.registry.get_model(deployed) == platform.registry.get_model(deployed)
        page = sdk.list_versions(deployed, limit=5)
        assert isinstance(page, Page) and page == platform.registry.list_versions(deployed, limit=5)
        assert sdk.list_models(prefix=deployed) == platform.registry.list_models(prefix=deployed)
        assert sdk.search(prefix=deployed, flavor="onnx") == platform.registry.search(prefix=deployed, flavor="onnx")
        assert sdk.get_deployment(deployed) == platform.get_deployment(deployed)
        assert sdk.deployments() == platform.deployments()
        served = sdk.serving(deployed)
        assert served and all(isinstance(s, ServingState) and s.deployment == deployed for s in served)
        assert served == platform.serving(deployed)
        tagged = sdk.set_tags(deployed, {"owner": "ml"})
        assert isinstance(tagged, Model) and tagged == platform.registry.get_model(deployed)
        retagged = sdk.set_tags(deployed, {"stage": "qa"}, version=1)
        assert isinstance(retagged, ModelVersion) and retagged.tags["stage"] == "qa"
        events = sdk.audit(resource=f"models/{deployed}")
        assert events.items and all(isinstance(e, AuditEvent) for e in events.items)


def _promote(api: PlatformAPI, name: str, source: Any) -> tuple[ModelVersion, Deployment, dict[str, Any]]:
    """The same code against an embedded platform and against a server."""
    version = api.registry.register(name, source, flavor="onnx", tags={"team": "growth"},
                                    lineage={"source_run": "run-1", "dataset": "s3://d/x.parquet"})
    api.registry.set_alias(name, version.number, "production")
    deployment = api.deploy(f"{name}@production", batching={"max_batch_size": 4, "max_wait_ms": 1})
    outputs = api.predict(deployment.name, {"x": features(2)})
    api.undeploy(deployment.name)
    return api.registry.get_version(f"{name}@production"), deployment, outputs


def test_one_protocol_for_platform_and_client(client: TestClient, platform: Platform, model_path: Any) -> None:
    with Client("http://testserver", transport=_in_process(client)) as sdk:
        apis: list[tuple[str, PlatformAPI]] = [("protocol-embedded", platform), ("protocol-remote", sdk)]
        results = {name: _promote(api, name, model_path) for name, api in apis}
    (v1, d1, o1), (v2, d2, o2) = results.values()
    assert type(v1) is type(v2) is ModelVersion and type(d1) is type(d2) is Deployment

    def shape(record: Any) -> dict[str, Any]:  # without what differs between the runs: names, timestamps
        return {k: v for k, v in to_json(record).items()
                if k not in ("name", "model", "requested_ref") and not k.endswith("_at")}

    assert shape(v1) == shape(v2) and shape(d1) == shape(d2)
    assert v1.lineage.datasets == ("s3://d/x.parquet",) and v1.aliases == ("production",)
    assert sorted(o1) == sorted(o2) and all(isinstance(o, np.ndarray) for o in (*o1.values(), *o2.values()))
    np.testing.assert_allclose(o1["probability"], o2["probability"], rtol=1e-6)


def test_the_async_client_returns_the_same_records(client: TestClient, platform: Platform, deployed: str) -> None:
    import asyncio

    async def main() -> tuple[Any, ...]:
        async with AsyncClient("http://testserver", transport=httpx.ASGITransport(app=client.app)) as sdk:
            assert sdk.registry is sdk
            return (await sdk.get_version(deployed), await sdk.registry.list_models(prefix=deployed),
                    await sdk.get_deployment(deployed))

    version, models, deployment = asyncio.run(main())
    assert version == platform.registry.get_version(deployed)
    assert models == platform.registry.list_models(prefix=deployed)
    assert deployment == platform.get_deployment(deployed)


def test_answers_from_a_newer_server_are_read_and_broken_ones_are_errors() -> None:
    answers = {"/api/v1/models/churn/versions/3": {**to_json(VERSION), "added_later": {"x": 1}},
               "/api/v1/models/churn/versions/4": {**to_json(VERSION), "version": "four"}}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answers[request.url.path])

    with Client("http://h", transport=httpx.MockTransport(handler)) as sdk:
        assert sdk.get_version("churn:3") == VERSION
        with pytest.raises(errors.ModelyardError, match="is not what was expected") as info:
            sdk.get_version("churn:4")
        assert type(info.value) is errors.ModelyardError  # the server's fault: not the caller's InvalidInput


ERROR_CLASSES = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.ModelyardError)]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_class_comes_back_as_itself(cls: type[errors.ModelyardError]) -> None:
    """A new error class needs a ``problem_type`` of its own, and the client then raises it (a ConfigError is
    the server's config, so the caller's InvalidInput)."""
    assert [c for c in ERROR_CLASSES if c.problem_type == cls.problem_type] == [cls]
    exc = error_from_response(_problem(cls.status, cls.problem_type))
    expected = errors.InvalidInput if cls is errors.ConfigError else cls
    assert type(exc) is expected and exc.status == cls.status
    assert errors.error_class(errors.problem_type_uri(cls.problem_type)) is expected


def test_the_server_names_problems_with_the_types_errors_defines(client: TestClient, deployed: str) -> None:
    lost = client.get("/api/v1/models/no-such-model")
    assert lost.json()["type"] == errors.problem_type_uri(errors.NotFound.problem_type)
    nowhere = client.get("/no/such/route")
    assert nowhere.status_code == 404 and nowhere.json()["type"] == errors.problem_type_uri(
        errors.HTTP_PROBLEM_TYPES[404])
    bad = client.put(f"/api/v1/models/{deployed}/aliases/Not-An-Alias!", json={"version": 1})
    assert bad.json()["type"] == errors.problem_type_uri(errors.InvalidInput.problem_type)
    wrong_method = client.patch("/api/v1/deployments")
    assert wrong_method.json()["type"] == errors.problem_type_uri(errors.HTTP_PROBLEM_TYPES[405])
    for response in (lost, nowhere, bad, wrong_method):
        assert errors.error_class(response.json()["type"]) is type(error_from_response(
            httpx.Response(response.status_code, json=response.json(),
                           headers={"content-type": "application/problem+json"})))


def test_importing_modelyard_does_not_import_httpx() -> None:
    code = "import sys, modelyard, modelyard.platform; print('httpx' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
