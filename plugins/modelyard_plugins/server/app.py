"""``create_app(platform)``: the Litestar app of the bundled server, assembled from every plugin's routes.

The app is a thin layer over the :class:`~modelyard.platform.Platform`: plugins contribute controllers through
``modelyard_http_routes`` (this plugin's are the V2 protocol and ``/api/v1``); every route must declare a catalogue
action or be public, or ``create_app`` refuses to build the app (:func:`~modelyard_plugins.server.auth.check_routes`);
one middleware authenticates every request but the public ones and sees that each is decided once, by the
Platform (:mod:`modelyard_plugins.server.auth`); one wrapper gives every request an id (``X-Request-Id``, bound into
every log line of the request and named in every problem answer), and one set of exception handlers turns every error into RFC 9457
problem details. On startup the deployments recorded in the registry are brought back, so a restarted server
serves what was deployed; on shutdown the platform is closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anyio.to_thread
import structlog
from litestar import Litestar
from litestar.datastructures import State
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from modelyard import __version__
from modelyard.errors import ConfigError, ConfigIssue, PluginError

from modelyard_plugins.server import request_ids
from modelyard_plugins.server.auth import auth_middleware, check_routes, open_automatic_options
from modelyard_plugins.server.config import server_settings
from modelyard_plugins.server.problems import EXCEPTION_HANDLERS
from modelyard_plugins.server.schemas import BoundedJSONRequest

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
    handlers, owners = contributed_routes(platform)

    async def restore_deployments() -> None:
        # Converge to the records, then keep converging to changes made by other processes (other workers,
        # servers or the embedded CLI) within [server] reconcile_interval_s.
        restored = await anyio.to_thread.run_sync(platform.restore_deployments)
        if restored:
            log.info("deployments restored", deployments=[d.name for d in restored])
        platform.reconciler.start(settings.reconcile_interval_s)

    async def close() -> None:
        if close_platform:
            await anyio.to_thread.run_sync(platform.close)
        log.info("server stopped")

    app = Litestar(
        route_handlers=handlers,
        middleware=[auth_middleware],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        request_class=BoundedJSONRequest,  # bodies Litestar parses are depth-checked before parsing
        on_startup=[restore_deployments],
        on_shutdown=[close],
        openapi_config=OpenAPIConfig(title="modelyard", version=__version__, path="/schema",
                                     description="The modelyard server: the Open Inference Protocol under /v2, "
                                                 "the registry and deployments under /api/v1."),
        logging_config=None,  # structlog is configured by the platform; Litestar must not reconfigure logging
        state=State({"platform": platform, "server_settings": settings, "dev": dev}),
        debug=False,  # debug answers carry tracebacks
    )
    # Deny by default: a route that declares no catalogue action (and is not public) stops the app here.
    open_automatic_options(app)
    check_routes(app, platform.actions, lambda handler: owners.get(_function(handler), "unknown"))
    return request_ids.install(app)


def contributed_routes(platform: Any) -> tuple[list[Any], dict[Any, str]]:
    """Every plugin's ``modelyard_http_routes``, called one implementation at a time so that each route is
    known by the plugin that contributed it: (the handlers, controllers and routers; the plugin name of each
    handler function)."""
    pm = platform.plugin_manager
    items: list[Any] = []
    owners: dict[Any, str] = {}
    for impl in reversed(pm.hook.modelyard_http_routes.get_hookimpls()):  # the order pluggy calls them in
        plugin = pm.get_name(impl.plugin) or repr(impl.plugin)
        if impl.wrapper or impl.hookwrapper:
            raise PluginError(f"plugin {plugin!r} wraps modelyard_http_routes; the server needs to know which "
                              "plugin contributed each route, so implement the hook plainly and return routes")
        batch = list(impl.function(**{name: platform for name in impl.argnames}) or ())
        items += batch
        for item in batch:
            owners.update(dict.fromkeys(_functions(item), plugin))
    return items, owners


def _functions(item: Any) -> Iterable[Any]:
    """The handler functions of a route handler, a Controller class or a Router: Litestar copies handlers when
    it registers them, but the copies keep their function."""
    if isinstance(item, BaseRouteHandler):
        return [_function(item)]
    if isinstance(item, type):  # a Controller: its handlers are (possibly inherited) class attributes
        found = (getattr(item, name, None) for name in dir(item))
        return [_function(v) for v in found if isinstance(v, BaseRouteHandler)]
    return [_function(h) for route in getattr(item, "routes", ()) for h in
            (getattr(route, "route_handlers", None) or [route.route_handler])]


def _function(handler: Any) -> Any:
    fn = getattr(handler, "_fn", None)
    while hasattr(fn, "func"):  # functools.partial
        fn = fn.func
    return getattr(fn, "__func__", fn)  # a controller's handlers are bound to the controller instance
