"""Deny by default and one decision per request: ``create_app`` refuses a route — the server's or any plugin's —
that neither declares a catalogue action nor is public, naming the route and the plugin; a declared route is
decided through ``Platform.authorize``; every request to the server's own routes is decided exactly once, by the
Platform, as the same call from Python would be."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Controller, Request, get
from litestar.params import FromPath
from litestar.testing import TestClient
from modelyard import Platform, hookimpl
from modelyard.actions import Action
from modelyard.errors import Forbidden, PluginError
from modelyard.plugins import get_plugin_manager
from modelyard.protocol.v2 import encode_request
from modelyard.providers import AuthProvider
from modelyard.types import Principal
from modelyard_plugins.server.app import create_app
from modelyard_plugins.server.auth import principal_id
from server_models import features

PROBLEM = "application/problem+json"


class Keys:
    """Offers the ``keys`` auth provider: ``Bearer <id>`` is the principal ``<id>``; the provider allows all, so
    the decisions the tests see are the ``modelyard_authorize`` hooks'."""

    @hookimpl
    def modelyard_authenticators(self) -> Iterator[AuthProvider]:
        yield AuthProvider(name="keys", factory=lambda config, ctx: self)

    def authenticate(self, headers: Any) -> Principal | None:
        scheme, _, token = (headers.get("authorization") or "").partition(" ")
        return Principal(id=token, roles=("maintainer",)) if scheme == "Bearer" and token else None

    def authorize(self, principal: Principal, action: str, resource: str) -> bool:
        return True

    def close(self) -> None:
        pass


class Decisions:
    """Records every decision; denies the (principal, action) pairs in ``deny``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.deny: set[tuple[str, str]] = set()

    @hookimpl
    def modelyard_authorize(self, principal: Principal, action: str, resource: str) -> bool | None:
        self.seen.append((principal.id, action, resource))
        return False if (principal.id, action) in self.deny else None

    def take(self) -> list[tuple[str, str, str]]:
        seen, self.seen = self.seen, []
        return seen


class Reports:
    """A plugin with an action of its own, a route that declares it and a public one."""

    @hookimpl
    def modelyard_actions(self) -> Iterator[Action]:
        yield Action(name="acme.reports:read", resources="reports/{name}", description="Read a usage report.")

    @hookimpl
    def modelyard_http_routes(self, platform: Platform) -> list[Any]:
        @get("/reports/{name:str}", opt={"action": "acme.reports:read", "resource": "reports/{name}"},
             sync_to_thread=False)
        def report(request: Request, name: FromPath[str]) -> dict[str, str]:
            return {"report": name, "for": principal_id(request)}

        @get("/reports-about", opt={"public": True}, sync_to_thread=False)
        def about() -> dict[str, str]:
            return {"about": "usage reports"}

        return [report, about]


def alice(token: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _platform(data: Path, *plugins: tuple[str, Any]) -> Platform:
    pm = get_plugin_manager(plugins=[("keys", Keys()), *plugins])
    return Platform.from_config({"platform": {"data_dir": str(data), "log_level": "warning"},
                                 "auth": {"use": "keys"}}, plugin_manager=pm)


# --------------------------------------------------------------------------------------------- create_app's check
def _plugin(name: str, *routes: Any) -> tuple[str, Any]:
    class Contributes:
        @hookimpl
        def modelyard_http_routes(self, platform: Platform) -> list[Any]:
            return list(routes)

    return name, Contributes()


def _refusal(tmp_path: Path, *plugins: tuple[str, Any]) -> str:
    with _platform(tmp_path / "data", *plugins) as plat, pytest.raises(PluginError) as err:
        create_app(plat, close_platform=False)
    return str(err.value)


@get("/reports/undeclared", sync_to_thread=False)
def undeclared() -> None:
    """No opt at all: before this check, any authenticated caller got in."""


def test_a_plugin_route_without_an_action_stops_create_app(tmp_path: Path) -> None:
    message = _refusal(tmp_path, _plugin("undeclared", undeclared))
    assert "route GET /reports/undeclared (plugin 'undeclared') declares no action" in message
    assert "opt={'public': True}" in message  # and says how to fix it


def test_a_controller_route_without_an_action_names_its_plugin(tmp_path: Path) -> None:
    class ReportsController(Controller):
        path = "/controlled"

        @get("/fine", opt={"public": True}, sync_to_thread=False)
        def fine(self) -> None: ...

        @get("/forgotten", sync_to_thread=False)
        def forgotten(self) -> None: ...

    message = _refusal(tmp_path, _plugin("controlled", ReportsController))
    assert "route GET /controlled/forgotten (plugin 'controlled') declares no action" in message
    assert "/controlled/fine" not in message


@pytest.mark.parametrize("opt, expected", [
    ({"action": "acme.reports:reed", "resource": "reports/{name}"},
     "'acme.reports:reed' is not in the catalogue; did you mean 'acme.reports:read'"),
    ({"action": "deployments:deploy", "resource": "deployments/{name}"}, "'deployments:deploy' is not in the catalogue"),
    ({"action": "models:read", "resource": "reports/{name}"}, "resource 'reports/{name}' is not a resource of "
                                                              "'models:read'"),
    ({"action": "acme.reports:read"}, "resource None is not a resource of 'acme.reports:read'"),
    ({"action": "acme.reports:read", "resource": "reports/{report}"}, "names report, which the path does not have"),
    ({"action": "acme.reports:read", "resource": "reports/{name}", "decided_by": "handler"},
     "decided_by 'handler' must be 'platform' or absent"),
    ({"public": True, "action": "acme.reports:read", "resource": "reports/{name}"}, "is public and declares action"),
])
def test_a_wrong_declaration_stops_create_app(tmp_path: Path, opt: dict[str, Any], expected: str) -> None:
    @get("/reports/{name:str}/wrong", opt=opt, sync_to_thread=False)
    def wrong(name: FromPath[str]) -> None: ...

    message = _refusal(tmp_path, ("reports", Reports()), _plugin("wrong", wrong))
    assert "route GET /reports/{name:str}/wrong (plugin 'wrong')" in message and expected in message, message


def test_every_wrong_route_is_reported_at_once(tmp_path: Path) -> None:
    @get("/other/undeclared", sync_to_thread=False)
    def other() -> None: ...

    message = _refusal(tmp_path, _plugin("one", undeclared), _plugin("two", other))
    assert "2 route(s)" in message and "(plugin 'one')" in message and "(plugin 'two')" in message


# --------------------------------------------------------------------------------------------- a declared route
@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Platform, Decisions]]:
    """A server with the ``keys`` auth provider (no dev mode), the reports plugin and a decision recorder."""
    decisions = Decisions()
    with _platform(tmp_path_factory.mktemp("actions"), ("reports", Reports()), ("decisions", decisions)) as plat, \
            TestClient(create_app(plat, close_platform=False)) as client:
        yield client, plat, decisions


def test_a_declared_plugin_route_is_decided_through_platform_authorize(guarded) -> None:
    client, _, decisions = guarded
    decisions.take()
    response = client.get("/reports/q1", headers=alice())
    assert response.status_code == 200 and response.json() == {"report": "q1", "for": "alice"}
    assert decisions.take() == [("alice", "acme.reports:read", "reports/q1")]
    decisions.deny = {("bob", "acme.reports:read")}
    try:
        response = client.get("/reports/q1", headers=alice("bob"))
    finally:
        decisions.deny = set()
    assert response.status_code == 403 and response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "urn:modelyard:problem:forbidden"
    assert "'bob' may not acme.reports:read on reports/q1" in response.json()["detail"]
    assert client.get("/reports/q1").status_code == 401
    assert client.get("/reports-about").json() == {"about": "usage reports"}  # public: no credentials
    assert decisions.take() == [("bob", "acme.reports:read", "reports/q1")]  # 401 and public: no decision


def test_a_vetoed_deploy_over_http_is_a_403_and_records_only_the_denial(guarded, model_path: Path) -> None:
    client, plat, decisions = guarded
    plat.registry.register("vetoed", model_path, flavor="onnx")
    decisions.deny = {("mallory", "deployments:create")}
    try:
        response = client.post("/api/v1/deployments", json={"model": "vetoed"}, headers=alice("mallory"))
        # From Python the same decision is made, with the same principal: the server is no second implementation.
        with pytest.raises(Forbidden):
            plat.deploy("vetoed", principal=Principal(id="mallory"))
    finally:
        decisions.deny = set()
    assert response.status_code == 403 and response.headers["content-type"] == PROBLEM, response.text
    body = response.json()
    assert body["type"] == "urn:modelyard:problem:forbidden" and body["status"] == 403
    assert "'mallory' may not deployments:create on deployments/vetoed" in body["detail"]
    assert [d.name for d in plat.registry_backend.list_deployments()] == []
    assert not plat.runtime.ready("vetoed")
    denied = [e for e in plat.registry_backend.list_audit(resource="deployments/vetoed").items]
    assert [(e.action, e.principal, e.outcome) for e in denied] == [("deployments:create", "mallory", "denied")] * 2
    # The audit log shows it over HTTP too.
    audit = client.get("/api/v1/audit", params={"resource": "deployments/vetoed"}, headers=alice()).json()
    assert [(e["action"], e["principal"], e["outcome"]) for e in audit["items"]] == [
        ("deployments:create", "mallory", "denied")] * 2


# --------------------------------------------------------------------------------------------- once per request
def _infer_body() -> tuple[bytes, dict[str, str]]:
    return encode_request({"x": features(1)}, binary=False)


#: One request per route of the server plugin: (method, the route's path, the URL, request arguments, the
#: action decided). The test fails if a route is missing here.
ROUTES: list[tuple[str, str, str, dict[str, Any], str]] = [
    ("GET", "/api/v1/models", "/api/v1/models", {}, "models:read"),
    ("POST", "/api/v1/models", "/api/v1/models", {"upload": True}, "models:register"),
    ("GET", "/api/v1/models/{name:str}", "/api/v1/models/once", {}, "models:read"),
    ("GET", "/api/v1/models/{name:str}/versions", "/api/v1/models/once/versions", {}, "models:read"),
    ("GET", "/api/v1/models/{name:str}/versions/{version:str}", "/api/v1/models/once/versions/1", {}, "models:read"),
    ("PUT", "/api/v1/models/{name:str}/aliases/{alias:str}", "/api/v1/models/once/aliases/staging",
     {"json": {"version": 1}}, "models:alias"),
    ("GET", "/api/v1/models/{name:str}/aliases/{alias:str}", "/api/v1/models/once/aliases/staging", {},
     "models:read"),
    ("DELETE", "/api/v1/models/{name:str}/aliases/{alias:str}", "/api/v1/models/once/aliases/staging", {},
     "models:unalias"),
    ("PATCH", "/api/v1/models/{name:str}/tags", "/api/v1/models/once/tags", {"json": {"tags": {"a": "b"}}},
     "models:tag"),
    ("GET", "/api/v1/search", "/api/v1/search", {"params": {"prefix": "on"}}, "models:read"),
    ("POST", "/api/v1/deployments", "/api/v1/deployments", {"json": {"model": "once", "name": "once-web"}},
     "deployments:create"),
    ("GET", "/api/v1/deployments", "/api/v1/deployments", {}, "deployments:read"),
    ("GET", "/api/v1/deployments/{name:str}", "/api/v1/deployments/once-web", {}, "deployments:read"),
    ("GET", "/api/v1/deployments/{name:str}/status", "/api/v1/deployments/once-web/status", {}, "deployments:read"),
    ("GET", "/v2", "/v2", {}, "server:read"),
    ("GET", "/v2/models/{name:str}", "/v2/models/once-web", {}, "deployments:read"),
    ("GET", "/v2/models/{name:str}/versions/{version:str}", "/v2/models/once-web/versions/1", {},
     "deployments:read"),
    ("GET", "/v2/models/{name:str}/ready", "/v2/models/once-web/ready", {}, "deployments:read"),
    ("GET", "/v2/models/{name:str}/versions/{version:str}/ready", "/v2/models/once-web/versions/1/ready", {},
     "deployments:read"),
    ("POST", "/v2/models/{name:str}/infer", "/v2/models/once-web/infer", {"infer": True}, "predict"),
    ("POST", "/v2/models/{name:str}/versions/{version:str}/infer", "/v2/models/once-web/versions/1/infer",
     {"infer": True}, "predict"),
    ("GET", "/api/v1/plugins", "/api/v1/plugins", {}, "plugins:read"),
    ("GET", "/api/v1/audit", "/api/v1/audit", {}, "audit:read"),
    ("DELETE", "/api/v1/deployments/{name:str}", "/api/v1/deployments/once-web", {}, "deployments:delete"),
]


def _declared_routes(app: Any) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if not handler.opt.get("public") and not route.path.startswith("/schema"):
                found |= {(method, route.path) for method in handler.http_methods}
    return found


def test_every_request_to_the_servers_routes_is_decided_exactly_once(guarded, model_path: Path) -> None:
    client, _, decisions = guarded
    ours = {(m, p) for m, p, *_ in ROUTES}
    assert {r for r in _declared_routes(client.app) if not r[1].startswith("/reports")} == ours
    decisions.take()
    for method, path, url, kwargs, action in ROUTES:
        if kwargs.pop("upload", False):
            with model_path.open("rb") as fh:
                response = client.post(url, files={"file": ("m.onnx", fh)}, data={"name": "once", "flavor": "onnx"},
                                       headers=alice())
        elif kwargs.pop("infer", False):
            body, headers = _infer_body()
            response = client.post(url, content=body, headers={**headers, **alice()})
        else:
            response = client.request(method, url, headers=alice(), **kwargs)
        assert response.status_code < 400, (method, path, response.text)
        seen = decisions.take()
        assert [(who, what) for who, what, _ in seen] == [("alice", action)], (method, path, seen)
