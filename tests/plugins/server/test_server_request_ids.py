"""Every request has an id: the caller's sane ``X-Request-Id`` or a generated one, echoed in the response, named
in problem answers, bound into the log context for exactly that request — never leaking into the next one."""

from __future__ import annotations

import asyncio
import json
import re
import string
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar import get
from litestar.params import FromQuery
from litestar.testing import TestClient
from modelyard import Platform, hookimpl
from modelyard.plugins import get_plugin_manager
from modelyard_plugins.server.app import create_app
from modelyard_plugins.server.request_ids import current_request_id, new_request_id, request_id_from

SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")
log = structlog.get_logger("tests.request_ids")


class WhoAmI:
    """A route answering the request id it sees after yielding to the event loop (and logging a line)."""

    @hookimpl
    def modelyard_http_routes(self, platform: Platform) -> list[Any]:
        @get("/test/whoami", opt={"public": True})
        async def whoami(delay: FromQuery[float] = 0.0) -> dict[str, Any]:
            seen = current_request_id()
            await asyncio.sleep(delay)  # other requests run in between on the same loop
            log.warning("whoami", seen=seen)
            return {"before": seen, "after": current_request_id()}

        return [whoami]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The server app with the test route, in dev mode."""
    pm = get_plugin_manager(plugins=[("whoami", WhoAmI())])
    data = tmp_path_factory.mktemp("request-ids")
    with Platform.from_config({"platform": {"data_dir": str(data), "log_level": "warning"}}, plugin_manager=pm) as plat:
        yield create_app(plat, close_platform=False, dev=True)


@pytest.fixture(scope="module")
def client(app: Any) -> Iterator[TestClient]:
    """A TestClient over :func:`app`."""
    with TestClient(app) as client:
        yield client


def test_a_generated_id_is_echoed_and_seen_by_the_handler(client: TestClient) -> None:
    first, second = client.get("/test/whoami"), client.get("/test/whoami")
    ids = [r.headers["x-request-id"] for r in (first, second)]
    assert ids[0] != ids[1] and all(SANE.fullmatch(i) for i in ids)
    assert [r.json() for r in (first, second)] == [{"before": i, "after": i} for i in ids]
    assert current_request_id() is None  # nothing left behind in the caller's context


def test_the_callers_sane_id_is_kept(client: TestClient) -> None:
    for sane in ("abc", "Trace-1.2_3", "x" * 128):
        response = client.get("/test/whoami", headers={"X-Request-Id": sane})
        assert response.headers["x-request-id"] == sane and response.json()["before"] == sane


@pytest.mark.parametrize("bad", ["x" * 129, "has space", "semi;colon", "quote\"", "new\\nline", "{json}", ""])
def test_a_bad_id_is_replaced(client: TestClient, bad: str) -> None:
    response = client.get("/test/whoami", headers={"X-Request-Id": bad})
    echoed = response.headers["x-request-id"]
    assert echoed != bad and SANE.fullmatch(echoed) and response.json()["before"] == echoed


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=140) | st.text(string.ascii_letters + string.digits + "._-", max_size=140).map(str.encode))
def test_the_id_is_always_a_sane_token(value: bytes) -> None:
    chosen = request_id_from([(b"accept", b"*/*"), (b"x-request-id", value)])
    assert SANE.fullmatch(chosen.decode("ascii"))
    assert (chosen == value) == bool(SANE.fullmatch(value.decode("latin-1")))


def test_generated_ids_are_unique() -> None:
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000


def test_problems_and_router_errors_carry_the_id(client: TestClient) -> None:
    for response in (client.get("/nowhere"), client.delete("/v2/health/live"),
                     client.get("/test/whoami", params={"delay": "soon"})):
        assert response.status_code in (400, 404, 405)
        assert response.json()["request_id"] == response.headers["x-request-id"]
    response = client.get("/nowhere", headers={"X-Request-Id": "mine"})
    assert response.json()["request_id"] == "mine"


def test_concurrent_requests_on_one_loop_keep_their_own_ids(app: Any, capsys: pytest.CaptureFixture[str]) -> None:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            # The transport runs the app in this very task: the id must be gone once the request is done.
            assert (await http.get("/test/whoami")).json()["before"] is not None
            assert current_request_id() is None
            # Staggered delays interleave the requests: each one resumes after others have started.
            return await asyncio.gather(*(http.get("/test/whoami", params={"delay": 0.002 * (i % 5)},
                                                   headers={"X-Request-Id": f"req-{i}"}) for i in range(20)))

    responses = asyncio.run(run())
    assert [r.json() for r in responses] == [{"before": f"req-{i}", "after": f"req-{i}"} for i in range(20)]
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    whoami = [line for line in lines if line.get("event") == "whoami" and line["seen"].startswith("req-")]
    assert sorted(line["request_id"] for line in whoami) == sorted(f"req-{i}" for i in range(20))
    assert all(line["request_id"] == line["seen"] for line in whoami)  # each line names its own request
