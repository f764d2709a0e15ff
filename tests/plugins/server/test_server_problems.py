"""Every failure is an RFC 9457 problem+json answer with the right status: bad bodies, bad tensors, limits,
unknown records, back-pressure, authentication and authorisation — and an unexpected error is a bare 500 that
reveals nothing (the details go to the server log)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar import get
from litestar.testing import TestClient
from modelyard import Platform, hookimpl
from modelyard.actions import Action
from modelyard.errors import ConfigError, Overloaded, QuotaExceeded, error_class
from modelyard.plugins import get_plugin_manager
from modelyard.protocol.v2 import HEADER_LENGTH_HEADER, encode_request
from modelyard.providers import AuthProvider
from modelyard.types import Principal
from modelyard_plugins.server.app import create_app
from server_models import features, make_platform

PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int, *, contains: str = "", **members: Any) -> dict[str, Any]:
    """The response is a problem+json of ``status`` whose detail contains ``contains`` and has ``members``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"].startswith("urn:modelyard:problem:")
    assert contains in body["detail"], body["detail"]
    assert body["error"] == body["detail"]  # what V2 clients (tritonclient) show
    for key, value in members.items():
        assert body.get(key) == value, (key, body)
    return body


def _tensor(**overrides: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP32", "data": [0.5] * 20, **overrides}]}


# ------------------------------------------------------------------------------------------------ requests
def test_unknown_route_and_wrong_method(client: TestClient) -> None:
    assert_problem(client.get("/nowhere"), 404)
    assert_problem(client.delete("/v2/health/live"), 405)


@pytest.mark.parametrize(("body", "headers", "status", "contains"), [
    (b"{not json", {}, 400, "not valid JSON"),
    (b"[]", {}, 400, "JSON object"),
    (json.dumps({"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP32"}]}).encode(), {}, 400, "'x'"),
    (json.dumps(_tensor(data=[1.0] * 3)).encode(), {}, 400, "'x'"),
    (json.dumps(_tensor(datatype="FP99")).encode(), {}, 422, "FP99"),
    (json.dumps(_tensor()).encode(), {HEADER_LENGTH_HEADER: "9999"}, 400, HEADER_LENGTH_HEADER),
    (json.dumps(_tensor()).encode(), {HEADER_LENGTH_HEADER: "abc"}, 400, HEADER_LENGTH_HEADER),
])
def test_malformed_infer_bodies(client: TestClient, deployed: str, body: bytes, headers: dict[str, str],
                                status: int, contains: str) -> None:
    assert_problem(client.post(f"/v2/models/{deployed}/infer", content=body, headers=headers), status,
                   contains=contains)


@pytest.mark.parametrize(("tensor", "input_name", "contains"), [
    ({"name": "features"}, "features", "unknown input 'features'"),
    ({"shape": [1, 3], "data": [1.0] * 3}, "x", "expected shape [-1, 20]"),
    ({"shape": [20], "data": [1.0] * 20}, "x", "expected shape"),
    ({"datatype": "BYTES", "data": ["a"] * 20}, "x", "expected datatype FP32"),
])
def test_tensors_that_do_not_fit_the_signature_name_the_input(client: TestClient, deployed: str,
                                                              tensor: dict[str, Any], input_name: str,
                                                              contains: str) -> None:
    response = client.post(f"/v2/models/{deployed}/infer", json=_tensor(**tensor))
    assert_problem(response, 422, contains=contains, input=input_name)


def test_missing_input_and_unknown_requested_output(client: TestClient, deployed: str) -> None:
    assert_problem(client.post(f"/v2/models/{deployed}/infer", json={"inputs": []}), 422, contains="missing input 'x'")
    response = client.post(f"/v2/models/{deployed}/infer", json={**_tensor(), "outputs": [{"name": "logits"}]})
    assert_problem(response, 422, contains="'logits'", input="logits")


def test_compressed_bodies_are_refused(client: TestClient, deployed: str) -> None:
    response = client.post(f"/v2/models/{deployed}/infer", content=json.dumps(_tensor()).encode(),
                           headers={"Content-Encoding": "gzip"})
    assert_problem(response, 415, contains="gzip")


def test_unknown_deployment_and_version_mismatch(client: TestClient, deployed: str) -> None:
    assert_problem(client.post("/v2/models/ghost/infer", json=_tensor()), 404, contains="ghost")
    assert_problem(client.post(f"/v2/models/{deployed}/versions/2/infer", json=_tensor()), 404,
                   contains="serves version 1, not version '2'")


def test_api_validation_errors(client: TestClient, deployed: str) -> None:
    assert_problem(client.get("/api/v1/models", params={"limit": "many"}), 400, field="limit")
    assert_problem(client.get("/api/v1/models", params={"limit": 0}), 422, field="limit")
    assert_problem(client.get("/api/v1/models", params=[("tag", "no-colon")]), 422, field="tag")
    assert_problem(client.get("/api/v1/models/Bad Name!"), 422)
    assert_problem(client.get(f"/api/v1/models/{deployed}/versions/zero"), 422, field="version")
    assert_problem(client.put(f"/api/v1/models/{deployed}/aliases/production", json={"version": "one"}), 422,
                   field="version")
    assert_problem(client.put(f"/api/v1/models/{deployed}/aliases/production", json={"version": 1, "x": 1}), 400)
    assert_problem(client.put(f"/api/v1/models/{deployed}/aliases/production", content=b"{"), 400)
    assert_problem(client.put(f"/api/v1/models/{deployed}/aliases/production", json={"version": 99}), 404)
    assert_problem(client.post("/api/v1/deployments", json={"model": deployed, "replicas": 0}), 422,
                   field="replicas")
    assert_problem(client.post("/api/v1/deployments", json={"model": "missing-model"}), 404)
    assert_problem(client.post("/api/v1/deployments", json={"model": "a:b:c"}), 422, field="model")


def test_registration_errors(client: TestClient, model_path: Path, tmp_path: Path, platform: Platform) -> None:
    def upload(content: bytes = b"", filename: str = "m.onnx", **fields: str) -> Any:
        return client.post("/api/v1/models", files={"file": (filename, content)}, data=fields)

    good = model_path.read_bytes()
    assert_problem(upload(good, flavor="onnx"), 422, contains="'name'", field="name")
    assert_problem(upload(good, name="m"), 422, contains="'flavor'", field="flavor")
    assert_problem(upload(good, name="m", flavor="cobol"), 422, contains="cobol", field="flavor")
    assert_problem(upload(good, name="../etc", flavor="onnx"), 422)
    assert_problem(upload(good, name="m", flavor="onnx", tags="[1, 2]"), 422, field="tags")
    assert_problem(upload(good, name="m", flavor="onnx", tags="{"), 422, field="tags")
    assert_problem(upload(good, name="m", flavor="onnx", colour="red"), 422, contains="'colour'", field="colour")
    assert_problem(upload(b"not an onnx model at all", name="m", flavor="onnx"), 422)
    no_file = client.post("/api/v1/models", files={"name": (None, "m"), "flavor": (None, "onnx")})
    assert_problem(no_file, 422, contains="'file'", field="file")
    malformed = client.post("/api/v1/models", content=b"--xyz\r\ngarbage",
                            headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert_problem(malformed, 400, contains="multipart")
    assert_problem(client.post("/api/v1/models", content=b"name=m",
                               headers={"Content-Type": "application/x-www-form-urlencoded"}), 415)
    assert_problem(client.post("/api/v1/models", json={"name": "m", "flavor": "onnx"}), 422, contains="uri")
    assert_problem(client.post("/api/v1/models", content=b"{", headers={"Content-Type": "application/json"}), 400)
    assert_problem(client.post("/api/v1/models", json={"name": "m", "flavor": "onnx",
                                                       "uri": str(tmp_path / "absent.onnx")}), 422)
    assert list(platform.tmp_dir.iterdir()) == []  # no upload left behind by any of them


# ------------------------------------------------------------------------------------------------ limits
@pytest.fixture(scope="module")
def small_limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app whose body and upload limits are 1 MiB."""
    with make_platform(tmp_path_factory.mktemp("limits"), server={"max_body_mb": 1, "max_upload_mb": 1}) as plat, \
            TestClient(create_app(plat, dev=True, close_platform=False)) as client:
        client.app.state.platform_for_test = plat
        yield client


def test_bodies_over_the_limit_are_413(small_limits: TestClient) -> None:
    big = b"x" * (1024 * 1024 + 1)
    assert_problem(small_limits.post("/v2/models/any/infer", content=big), 404)  # unknown model: checked first
    assert_problem(small_limits.put("/api/v1/models/m/aliases/a", content=big,
                                    headers={"Content-Type": "application/json"}), 413)
    assert_problem(small_limits.post("/api/v1/models", content=big, headers={"Content-Type": "application/json"}),
                   413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        for _ in range(3):
            yield b"y" * (512 * 1024)

    assert_problem(small_limits.post("/api/v1/models", content=chunks(),
                                     headers={"Content-Type": "application/json"}), 413)


def test_uploads_over_the_limit_are_413_and_leave_nothing(small_limits: TestClient) -> None:
    big = np.random.default_rng(0).bytes(1024 * 1024 + 10)
    response = small_limits.post("/api/v1/models", files={"file": ("big.onnx", big)},
                                 data={"name": "big", "flavor": "onnx"})
    assert_problem(response, 413)
    plat = small_limits.app.state.platform_for_test
    assert list(plat.tmp_dir.iterdir()) == []


def test_infer_bodies_over_the_limit_are_413(small_limits: TestClient, model_path: Path) -> None:
    plat = small_limits.app.state.platform_for_test
    plat.registry.register("limited", model_path, flavor="onnx")
    plat.deploy("limited")
    x = features(8000)  # 8000 x 20 FP32 = 640 KB binary, far more as JSON
    body, headers = encode_request({"x": x}, binary=False)
    assert len(body) > 1024 * 1024
    assert_problem(small_limits.post("/v2/models/limited/infer", content=body, headers=headers), 413)
    body, headers = encode_request({"x": x}, binary=True)
    assert small_limits.post("/v2/models/limited/infer", content=body, headers=headers).status_code == 200


# ------------------------------------------------------------------------------------------------ plugins
class Trouble:
    """A plugin adding routes that fail on purpose (through the same hook the server's own routes use), and the
    action they declare."""

    @hookimpl
    def modelyard_actions(self) -> Iterator[Action]:
        yield Action(name="test:read", resources="test", description="Call the test routes.")

    @hookimpl
    def modelyard_http_routes(self, platform: Platform) -> list[Any]:
        @get("/test/overloaded", opt={"action": "test:read", "resource": "test"}, sync_to_thread=False)
        def overloaded() -> None:
            raise Overloaded("the queue is full", retry_after=2.2)

        @get("/test/quota", opt={"action": "test:read", "resource": "test"}, sync_to_thread=False)
        def quota() -> None:
            raise QuotaExceeded("alice has used her 1000 calls this month", retry_after=3600.5)

        @get("/test/boom", opt={"action": "test:read", "resource": "test"}, sync_to_thread=False)
        def boom() -> None:
            raise RuntimeError("boom-secret-detail")

        return [overloaded, quota, boom]


class KeyAuth:
    """Offers the ``keys`` auth provider: ``Bearer good`` is alice; she may do anything but create deployments."""

    @hookimpl
    def modelyard_authenticators(self) -> Iterator[AuthProvider]:
        yield AuthProvider(name="keys", factory=lambda config, ctx: self)

    def authenticate(self, headers: Any) -> Principal | None:
        return Principal(id="alice") if headers.get("authorization") == "Bearer good" else None

    def authorize(self, principal: Principal, action: str, resource: str) -> bool:
        return action != "deployments:create"

    def close(self) -> None:
        pass


class Vetoes:
    """Decision hooks: tagging is vetoed; the alias decisions crash (which must deny)."""

    @hookimpl
    def modelyard_authorize(self, principal: Principal, action: str, resource: str) -> bool | None:
        if action == "models:tag":
            return False
        if action in ("models:alias", "models:unalias"):
            raise RuntimeError("decision hook bug")
        return None


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app with the test plugins, the ``keys`` auth provider and no dev mode."""
    pm = get_plugin_manager(plugins=[("trouble", Trouble()), ("keyauth", KeyAuth()), ("vetoes", Vetoes())])
    data = tmp_path_factory.mktemp("guarded")
    with Platform.from_config({"platform": {"data_dir": str(data), "log_level": "warning"}, "auth": {"use": "keys"}},
                              plugin_manager=pm) as plat, \
            TestClient(create_app(plat, close_platform=False)) as client:
        yield client


GOOD = {"Authorization": "Bearer good"}


def test_overloaded_is_429_with_retry_after(guarded: TestClient) -> None:
    response = guarded.get("/test/overloaded", headers=GOOD)
    assert_problem(response, 429, contains="queue is full", retry_after=2.2)
    assert response.headers["retry-after"] == "3"


def test_a_quota_exceeded_is_429_quota_exceeded_with_retry_after(guarded: TestClient) -> None:
    response = guarded.get("/test/quota", headers=GOOD)
    body = assert_problem(response, 429, contains="1000 calls", retry_after=3600.5)
    assert body["type"] == "urn:modelyard:problem:quota-exceeded" and body["title"] == "Quota exceeded"
    assert response.headers["retry-after"] == "3601"
    assert error_class(body["type"]) is QuotaExceeded  # a client raises the same error


def test_unexpected_errors_are_bare_500s(guarded: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    response = guarded.get("/test/boom", headers=GOOD)
    body = assert_problem(response, 500)
    assert "boom-secret-detail" not in response.text and "Traceback" not in response.text
    assert "RuntimeError" not in json.dumps(body)
    logged = capsys.readouterr().err
    assert "boom-secret-detail" in logged and "Traceback" in logged  # the server log has it
    # The body names the request, and the log line about it carries the same id: a user can match the two.
    request_id = body["request_id"]
    assert request_id and response.headers["x-request-id"] == request_id
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert [line["request_id"] for line in lines if line.get("event") == "unhandled error"] == [request_id]


def test_a_500_names_the_callers_request_id(guarded: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    response = guarded.get("/test/boom", headers={**GOOD, "X-Request-Id": "trace-42.a_b"})
    assert assert_problem(response, 500)["request_id"] == "trace-42.a_b"
    assert '"request_id": "trace-42.a_b"' in capsys.readouterr().err


def test_credentials_are_required_except_on_public_routes(guarded: TestClient) -> None:
    response = guarded.get("/api/v1/models")
    assert_problem(response, 401, contains="Authorization")
    assert response.headers["www-authenticate"] == "Bearer"
    assert_problem(guarded.get("/api/v1/models", headers={"Authorization": "Bearer bad"}), 401)
    assert_problem(guarded.post("/v2/models/any/infer", content=b"{}"), 401)  # before the body is even read
    assert guarded.get("/api/v1/models", headers=GOOD).status_code == 200
    assert guarded.get("/v2/health/live").status_code == 200
    assert guarded.get("/v2/health/ready").status_code == 200
    assert guarded.get("/schema/openapi.json").status_code == 200


def test_server_side_paths_are_refused_outside_dev_mode(guarded: TestClient, model_path: Path) -> None:
    for uri in (str(model_path), model_path.as_uri()):
        response = guarded.post("/api/v1/models", json={"name": "m", "flavor": "onnx", "uri": uri}, headers=GOOD)
        assert_problem(response, 422, contains="dev mode", field="uri")


def test_authorisation_denies_and_fails_closed(guarded: TestClient) -> None:
    assert_problem(guarded.post("/api/v1/deployments", json={"model": "m"}, headers=GOOD), 403,
                   contains="deployments:create")
    assert_problem(guarded.patch("/api/v1/models/m/tags", json={"tags": {}}, headers=GOOD), 403,
                   contains="models/m")
    assert_problem(guarded.delete("/api/v1/models/m/aliases/a", headers=GOOD), 403)
    assert guarded.get("/api/v1/models/m", headers=GOOD).status_code == 404  # allowed, just absent


def test_the_anonymous_provider_needs_dev_mode(platform: Platform) -> None:
    with pytest.raises(ConfigError) as info:
        create_app(platform)
    assert "--dev" in str(info.value) and "[auth]" in str(info.value)
