"""Schemathesis against the server's own OpenAPI document, over a real socket: requests generated from the schema
(valid and invalid) of the V2 infer routes and the ``/api/v1`` model routes never get a 5xx, and every 4xx is
problem+json.

The OpenAPI document describes the V2 infer body although the route reads it itself (see ``server/v2.py``), so the
generated requests reach the V2 decoder; the deployment name is pinned to the deployed model so that they get past
the lookup. Bounded: a fixed number of examples per operation, no deadline per example (the machine is shared), and
the whole module runs in well under a minute.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the test extra")
from hypothesis import given  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from test_server_hardening import url  # noqa: E402, F401  (the app on uvicorn over this module's platform)

#: Per operation and generation mode (valid, then invalid data): about 50 requests per operation in all.
EXAMPLES = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
V2_INFER = [("POST", "/v2/models/{name}/infer"), ("POST", "/v2/models/{name}/versions/{version}/infer")]
MODEL_ROUTES = [
    ("GET", "/api/v1/models"), ("POST", "/api/v1/models"), ("GET", "/api/v1/models/{name}"),
    ("GET", "/api/v1/models/{name}/versions"), ("GET", "/api/v1/models/{name}/versions/{version}"),
    ("GET", "/api/v1/models/{name}/aliases/{alias}"), ("PUT", "/api/v1/models/{name}/aliases/{alias}"),
    ("DELETE", "/api/v1/models/{name}/aliases/{alias}"), ("PATCH", "/api/v1/models/{name}/tags"),
    ("GET", "/api/v1/search"),
]

#: Only text path parameters: nothing can be generated that breaks the schema, so no negative mode.
_PATH_ONLY = {("GET", "/api/v1/models/{name}"), ("GET", "/api/v1/models/{name}/versions/{version}"),
              ("GET", "/api/v1/models/{name}/aliases/{alias}"), ("DELETE", "/api/v1/models/{name}/aliases/{alias}")}
CASES = [(method, path, mode) for method, path in V2_INFER + MODEL_ROUTES
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if mode is GenerationMode.POSITIVE or (method, path) not in _PATH_ONLY]


@pytest.fixture(scope="module")
def api_schema(url: str) -> Any:  # noqa: F811
    return schemathesis.openapi.from_url(f"{url}/schema/openapi.json")


def _check(case: Any, url: str) -> None:  # noqa: F811
    response = case.call_and_validate(base_url=url, checks=[not_a_server_error], timeout=30)
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert response.headers.get("content-type") == ["application/problem+json"], response.text[:200]


def test_the_fuzzed_operations_are_every_model_route(api_schema: Any) -> None:
    """A model route added later is fuzzed too, or this fails."""
    documented = {(method.upper(), path) for path, item in api_schema.raw_schema["paths"].items()
                  for method in item if path.startswith(("/api/v1/models", "/api/v1/search"))}
    assert documented == set(MODEL_ROUTES)
    for method, path in V2_INFER:
        assert "requestBody" in api_schema.raw_schema["paths"][path][method.lower()]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g}" for m, p, g in CASES])
def test_no_5xx(api_schema: Any, url: str, method: str, path: str, mode: GenerationMode) -> None:  # noqa: F811
    strategy = api_schema[path][method].as_strategy(generation_mode=mode)

    @EXAMPLES
    @given(case=strategy)
    def run(case: Any) -> None:
        if path.startswith("/v2/"):  # past the deployment lookup, into the decoder
            case.path_parameters = {**(case.path_parameters or {}), "name": "logreg"}
        _check(case, url)

    run()
