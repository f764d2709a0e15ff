"""``modelyard_plugins.server.responses``: the typed response bodies are exactly the converter's JSON — for
records made here and for what the running app answers today — and an answer typed with them is described in
the OpenAPI document. (Ready for the handlers to return; nothing here changes what they answer.)"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient
from modelyard.converter import to_json
from modelyard.serialize import serving_json
from modelyard.types import (
    ArtifactRef,
    AuditEvent,
    BatchingConfig,
    Deployment,
    Lineage,
    Model,
    ModelVersion,
    Page,
    ServingState,
    Signature,
    TensorSpec,
)
from modelyard_plugins.server.responses import (
    AuditOut,
    DeploymentAnswer,
    DeploymentList,
    DeploymentOut,
    DeploymentStatusOut,
    ModelOut,
    PageOut,
    ServingOut,
    VersionOut,
    wire,
)

WHEN = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
ARTIFACT = ArtifactRef(digest="ab" * 32, size=7)
SIGNATURE = Signature((TensorSpec("x", "FP32", (-1, 3)),), (TensorSpec("y", "INT64", (-1, 1)),))
VERSIONS = [
    ModelVersion(model="m", number=1, flavor="onnx", artifact=ARTIFACT, created_at=WHEN),
    ModelVersion(model="m", number=2, flavor="onnx", artifact=ARTIFACT, signature=SIGNATURE, requirements=("a",),
                 tags={"t": "v"}, lineage=Lineage(source_run="r", datasets=("d",), parent_version=1, extra={"k": "v"}),
                 metadata={"validation": {"ok": True, "max_abs_error": 0.5}}, aliases=("production",),
                 description="x", created_at=WHEN),
]
DEPLOYMENTS = [
    Deployment(name="d", model="m", version=1, runtime="local", created_at=WHEN, updated_at=WHEN),
    Deployment(name="d", model="m", version=2, runtime="local", requested_ref="m@production",
               batching=BatchingConfig(max_batch_size=4, max_wait_ms=2), replicas=2, options={"n": [1]},
               state="failed", message="no", generation=3, created_at=WHEN, updated_at=WHEN),
]
MODEL = Model(name="m", tags={"a": "b"}, latest_version=2, aliases={"production": 2}, created_at=WHEN,
              updated_at=WHEN)
EVENT = AuditEvent(action="models:register", resource="models/m", details={"digest": "ab", "n": 1}, at=WHEN)


def _same(schema: Any, value: Any, data: dict[str, Any]) -> None:
    """``value`` (a struct) writes exactly ``data``: the same members, values and order."""
    out = msgspec.to_builtins(value)
    assert out == data and list(out) == list(data)
    assert msgspec.to_builtins(msgspec.convert(data, schema)) == data


@pytest.mark.parametrize("version", VERSIONS)
def test_a_version_schema_is_the_converters_json(version: ModelVersion) -> None:
    _same(VersionOut, wire(VersionOut, version), to_json(version))


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_a_deployment_schema_is_the_converters_json(deployment: Deployment) -> None:
    _same(DeploymentOut, wire(DeploymentOut, deployment), to_json(deployment))
    processes = [serving_json(ServingState(process="p", deployment="d", version=2, generation=3, seen_at=WHEN),
                              deployment)]
    answer = {**to_json(deployment), "served_by": "p", "processes": processes}
    _same(DeploymentAnswer, wire(DeploymentAnswer, deployment, served_by="p", processes=processes), answer)
    _same(DeploymentStatusOut, wire(DeploymentStatusOut, deployment, served_by="p", processes=processes, ready=True,
                                    runtime_status={"requests": 1}),
          {**answer, "ready": True, "runtime_status": {"requests": 1}})


def test_models_pages_and_audit_schemas_are_the_converters_json() -> None:
    _same(ModelOut, wire(ModelOut, MODEL), to_json(MODEL))
    _same(AuditOut, wire(AuditOut, EVENT), to_json(EVENT))
    for page, schema in ((Page((MODEL,), total=3, offset=1, next_offset=2), PageOut[ModelOut]),
                         (Page(tuple(VERSIONS), total=2), PageOut[VersionOut]), (Page((EVENT,), total=1),
                                                                                  PageOut[AuditOut])):
        _same(schema, wire(schema, page), to_json(page))
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({**to_json(MODEL), "extra": 1}, ModelOut)  # drift is caught, not described away


def test_the_apps_answers_fit_the_schemas(client: TestClient, deployed: str) -> None:
    answers = [
        (f"/api/v1/models/{deployed}", ModelOut), (f"/api/v1/models/{deployed}/versions/1", VersionOut),
        (f"/api/v1/models/{deployed}/versions", PageOut[VersionOut]), ("/api/v1/models", PageOut[ModelOut]),
        ("/api/v1/search", PageOut[VersionOut]), ("/api/v1/deployments", DeploymentList),
        (f"/api/v1/deployments/{deployed}", DeploymentAnswer), ("/api/v1/audit", PageOut[AuditOut]),
        (f"/api/v1/deployments/{deployed}/status", DeploymentStatusOut),
    ]
    for path, schema in answers:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)
        _same(schema, msgspec.convert(response.json(), schema), response.json())
    served = client.get(f"/api/v1/deployments/{deployed}").json()["processes"]
    assert served and [msgspec.convert(p, ServingOut) for p in served]


def test_an_answer_typed_with_a_schema_is_described_in_openapi() -> None:
    @get("/version", sync_to_thread=False)
    def version() -> VersionOut:
        return wire(VersionOut, VERSIONS[1])

    @get("/page", sync_to_thread=False)
    def page() -> PageOut[VersionOut]:
        return wire(PageOut[VersionOut], Page(tuple(VERSIONS), total=2))

    with TestClient(Litestar([version, page])) as app:
        assert app.get("/version").json() == to_json(VERSIONS[1])
        assert app.get("/page").json() == to_json(Page(tuple(VERSIONS), total=2))
        document = app.get("/schema/openapi.json").json()
    schemas = document["components"]["schemas"]
    described = schemas["VersionOut"]
    assert list(described["properties"]) == list(to_json(VERSIONS[1]))
    assert set(described["required"]) == set(to_json(VERSIONS[1]))
    assert described["properties"]["created_at"]["format"] == "date-time"
    assert described["properties"]["version"]["type"] == "integer"
    ref = document["paths"]["/page"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert schemas[ref.rsplit("/", 1)[1]]["properties"]["items"]["items"]["$ref"].endswith("/VersionOut")
