"""``/api/v1``: registration (multipart upload and URI), listing and filters, versions, aliases, tags, search,
deployments, plugins and audit — answering with the same dicts as ``modelyard.serialize`` (what the CLI prints)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from litestar.testing import TestClient
from modelyard.serialize import deployment_json, model_json, version_json


def _upload(client: TestClient, path: Path, **fields: str):
    with path.open("rb") as fh:
        return client.post("/api/v1/models", files={"file": (path.name, fh, "application/octet-stream")},
                           data=fields)


def test_multipart_registration_records_every_field(client: TestClient, platform, model_path) -> None:
    response = _upload(client, model_path, name="churn", flavor="onnx", tags=json.dumps({"team": "growth"}),
                       lineage=json.dumps({"code_ref": "git:abc", "datasets": ["s3://d/train"]}), alias="staging",
                       description="churn model")
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/api/v1/models/churn/versions/{body['version']}"
    assert body == version_json(platform.registry.get_version(f"churn:{body['version']}"))
    assert body["tags"] == {"team": "growth"} and body["aliases"] == ["staging"]
    assert body["lineage"] == {"code_ref": "git:abc", "datasets": ["s3://d/train"]}
    assert body["description"] == "churn model" and body["flavor"] == "onnx"
    assert list(platform.tmp_dir.iterdir()) == []  # the upload's temp directory is gone


def test_uri_registration(client: TestClient, model_path) -> None:
    response = client.post("/api/v1/models", json={"name": "from-uri", "flavor": "onnx",
                                                   "uri": model_path.as_uri(), "tags": {"src": "uri"}})
    assert response.status_code == 201, response.text
    assert response.json()["model"] == "from-uri" and response.json()["tags"] == {"src": "uri"}


def test_reads_match_the_platform(client: TestClient, platform, model_path) -> None:
    for _ in range(3):
        assert _upload(client, model_path, name="paged", flavor="onnx").status_code == 201
    platform.registry.create_model("other-model", tags={"team": "x"})

    assert client.get("/api/v1/models/paged").json() == model_json(platform.registry.get_model("paged"))
    page = client.get("/api/v1/models/paged/versions", params={"limit": 2}).json()
    assert [v["version"] for v in page["items"]] == [3, 2] and page["total"] == 3 and page["next_offset"] == 2
    assert [v["version"] for v in client.get("/api/v1/models/paged/versions?offset=2").json()["items"]] == [1]
    assert client.get("/api/v1/models/paged/versions/2").json()["version"] == 2
    assert client.get("/api/v1/models/paged/versions/latest").json()["version"] == 3

    names = [m["name"] for m in client.get("/api/v1/models", params={"prefix": "pag"}).json()["items"]]
    assert names == ["paged"]
    tagged = client.get("/api/v1/models", params=[("tag", "team:x")]).json()["items"]
    assert [m["name"] for m in tagged] == ["other-model"]


def test_aliases_move_and_are_removed(client: TestClient, model_path) -> None:
    for _ in range(2):
        assert _upload(client, model_path, name="aliased", flavor="onnx").status_code == 201
    moved = client.put("/api/v1/models/aliased/aliases/production", json={"version": 1})
    assert moved.status_code == 200 and moved.json()["version"] == 1
    assert client.put("/api/v1/models/aliased/aliases/production", json={"version": 2}).json()["version"] == 2
    assert client.get("/api/v1/models/aliased/aliases/production").json()["version"] == 2
    assert client.get("/api/v1/models/aliased").json()["aliases"] == {"production": 2}
    assert [m["name"] for m in client.get("/api/v1/models?alias=production").json()["items"]] == ["aliased"]
    assert client.delete("/api/v1/models/aliased/aliases/production").status_code == 204
    assert client.get("/api/v1/models/aliased/aliases/production").status_code == 404


def test_tags_on_model_and_version(client: TestClient, model_path) -> None:
    assert _upload(client, model_path, name="tagged", flavor="onnx").status_code == 201
    model = client.patch("/api/v1/models/tagged/tags", json={"tags": {"a": "1", "b": "2"}})
    assert model.status_code == 200 and model.json()["tags"] == {"a": "1", "b": "2"}
    assert client.patch("/api/v1/models/tagged/tags", json={"remove": ["a"]}).json()["tags"] == {"b": "2"}
    version = client.patch("/api/v1/models/tagged/tags", json={"tags": {"stage": "qa"}, "version": 1}).json()
    assert version["version"] == 1 and version["tags"] == {"stage": "qa"}
    found = client.get("/api/v1/search", params=[("tag", "stage:qa"), ("flavor", "onnx")]).json()["items"]
    assert [(v["model"], v["version"]) for v in found] == [("tagged", 1)]


def test_deployments_lifecycle(client: TestClient, platform, model_path) -> None:
    assert _upload(client, model_path, name="served", flavor="onnx", alias="production").status_code == 201
    created = client.post("/api/v1/deployments", json={"model": "served@production", "name": "served-api",
                                                       "batching": {"max_batch_size": 8, "max_wait_ms": 1}})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/api/v1/deployments/served-api"
    body = created.json()
    # the record as stored, plus where it is served: the process that took the call, converged
    assert {k: v for k, v in body.items() if k not in ("served_by", "processes")} == deployment_json(
        platform.get_deployment("served-api"))
    assert [(p["process"], p["converged"]) for p in body["processes"]] == [(body["served_by"], True)]
    assert created.json()["batching"] == {"max_batch_size": 8, "max_wait_ms": 1.0, "wait_when_idle": False}
    assert "served-api" in [d["name"] for d in client.get("/api/v1/deployments").json()["items"]]
    status = client.get("/api/v1/deployments/served-api/status").json()
    assert status["ready"] is True and status["runtime_status"]["version"] == 1
    assert client.get("/api/v1/deployments/served-api").json()["model"] == "served"
    assert client.delete("/api/v1/deployments/served-api").status_code == 204
    assert client.get("/api/v1/deployments/served-api").status_code == 404
    assert not platform.runtime.ready("served-api")


def test_plugins_and_audit(client: TestClient, model_path) -> None:
    plugins = client.get("/api/v1/plugins").json()
    assert "server" in {p["name"] for p in plugins["plugins"]}
    assert "onnx" in {p["name"] for p in plugins["slots"]["builders"]}
    assert _upload(client, model_path, name="audited", flavor="onnx").status_code == 201
    events = client.get("/api/v1/audit", params={"resource": "models/audited/versions/1"}).json()["items"]
    assert [(e["action"], e["principal"]) for e in events] == [("models:register", "anonymous")]


def test_openapi_documents_both_apis(client: TestClient) -> None:
    schema = client.get("/schema/openapi.json").json()
    paths = schema["paths"]
    for path in ("/v2/models/{name}/infer", "/v2/health/ready", "/api/v1/models", "/api/v1/deployments",
                 "/api/v1/models/{name}/aliases/{alias}"):
        assert path in paths, path
    assert schema["info"]["title"] == "modelyard"


@pytest.mark.parametrize("path", ["/api/v1/models/nope", "/api/v1/models/nope/versions/1",
                                  "/api/v1/models/nope/aliases/production", "/api/v1/deployments/nope",
                                  "/api/v1/deployments/nope/status"])
def test_unknown_records_are_404_problems(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:modelyard:problem:not-found"
