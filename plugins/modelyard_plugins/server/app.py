"""``create_app(platform)``: the Litestar app of the bundled server, assembled from every plugin's routes.

The app is a thin layer over the :class:`~modelyard.platform.Platform`: plugins contribute controllers through
``modelyard_http_routes`` (this plugin's are the V2 protocol and ``/api/v1``), one middleware authenticates and
authorises every request but the public ones, one wrapper gives every request an id (``X-Request-Id``, bound into
every log line of the request and named in every problem answer), and one set of exception handlers turns every error into RFC 9457
problem details. On startup the deployments recorded in the registry are brought back, so a restarted server
serves what was deployed; on shutdown the platform is closed.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import structlog
from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from modelyard import __version__
from modelyard.errors import ConfigError, ConfigIssue

from modelyard_plugins.server import request_ids
from modelyard_plugins.server.auth import auth_middleware
from modelyard_plugins.server.config import server_settings
from modelyard_plugins.server.problems import EXCEPTION_HANDLERS

log = structlog.get_logger(__name__)

#: Auth providers that let every caller in: the server refuses them outside dev mode (DESIGN, security defaults).
OPEN_AUTH_PROVIDERS = frozenset({"anonymous"})


def check_auth(platform: Any, *, dev: bool) -> None:
    """Refuse to serve without credentials unless in dev mode: raises :class:`ConfigError` naming the remedy."""
    check_auth_config(platform.config, dev=dev)


def check_auth_config(config: Any, *, dev: bool) -> None:
    """:func:`check_auth` on a resolved config (``modelyard.platform.resolve_config``), before any assembly."""
    choice = config.one("auth")
    if dev or choice.provider.name not in OPEN_AUTH_PROVIDERS:
        return
    raise ConfigError([ConfigIssue(
        message=f"{choice.provider.name!r} lets every caller do everything, so the server only runs it in dev "
                "mode: start it with --dev (or [server] dev = true) on your own machine, or choose an auth "
                "provider that checks credentials",
        section="auth", key="use", file=config.file, given=choice.provider.name)],
        file=config.file or "config")


def create_app(platform: Any, *, dev: bool = False, close_platform: bool = True) -> Litestar:
    """The server's Litestar app for ``platform``.

    Args:
        platform: the assembled platform every handler calls.
        dev: development mode: the ``anonymous`` auth provider is allowed (otherwise it is a ConfigError).
        close_platform: close the platform when the app shuts down (the server owns it); tests that reuse one
            platform across apps pass False.
    """
    check_auth(platform, dev=dev)
    settings = server_settings(platform)
    handlers = [h for batch in platform.hook.modelyard_http_routes(platform=platform) for h in (batch or ())]

    async def restore_deployments() -> None:
        restored = await anyio.to_thread.run_sync(platform.restore_deployments)
        if restored:
            log.info("deployments restored", deployments=[d.name for d in restored])

    async def close() -> None:
        if close_platform:
            await anyio.to_thread.run_sync(platform.close)
        log.info("server stopped")

    app = Litestar(
        route_handlers=handlers,
        middleware=[auth_middleware],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        on_startup=[restore_deployments],
        on_shutdown=[close],
        openapi_config=OpenAPIConfig(title="modelyard", version=__version__, path="/schema",
                                     description="The modelyard server: the Open Inference Protocol under /v2, "
                                                 "the registry and deployments under /api/v1."),
        logging_config=None,  # structlog is configured by the platform; Litestar must not reconfigure logging
        state=State({"platform": platform, "server_settings": settings, "dev": dev}),
        debug=False,  # debug answers carry tracebacks
    )
    return request_ids.install(app)
