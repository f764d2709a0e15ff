"""Numbers beyond what a database stores are client errors (422 problem+json), never a 500 with an overflow."""

from __future__ import annotations

import pytest

HUGE = "99999999999999999999"


@pytest.mark.parametrize("method,path,body", [
    ("GET", f"/api/v1/models/logreg/versions/{HUGE}", None),
    ("GET", f"/api/v1/models/logreg/versions?offset={HUGE}", None),
    ("GET", f"/api/v1/models?offset={HUGE}", None),
    ("PUT", "/api/v1/models/logreg/aliases/prod", {"version": int(HUGE)}),
    ("POST", "/api/v1/deployments", {"model": f"logreg:{HUGE}"}),
    ("POST", f"/v2/models/logreg/versions/{HUGE}/infer", {"inputs": []}),
])
def test_huge_integers_are_client_errors(client, deployed, method, path, body):
    response = client.request(method, path, json=body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
