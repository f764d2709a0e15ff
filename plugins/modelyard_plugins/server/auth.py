"""Authentication of every request (the auth provider: who is calling), and where its one authorisation decision
is made (``Platform.require``: may they do this).

Every route declares what it does in ``opt`` — ``action``, a name from the action catalogue
(``"models:register"``, :mod:`modelyard.actions`), and ``resource``, a template over the path parameters
(``"models/{name}"``) — or ``opt={"public": True}`` for the routes that need no credentials (health);
``/metrics`` and the OpenAPI document are public whoever serves them. :func:`check_routes` refuses, at
``create_app``, any other route (deny by default).

A request is decided exactly once, by the Platform, in one of two places the route declares:

- ``"decided_by": "platform"`` — the handler calls a checking Platform verb (the registry's verbs, ``deploy``,
  ``undeploy``, ``deployments``, ``get_deployment``, …) with ``principal=principal_of(request)``, and that verb
  decides, on the resource it acts on (``models/churn`` even when the name came in the body) — the very check a
  CLI, Python or scheduler call of the verb passes. The middleware only authenticates.
- otherwise — the handler calls no checking verb (plugin listings, the audit log, V2 metadata, or a plugin's
  own route), and the middleware decides through ``Platform.require`` with the route's resource, before the
  body is read. Such a handler must not call a checking verb (it would decide twice).

The principal is left in ``scope["user"]`` (``request.user``) for handlers to act as. This is an ASGI middleware
rather than a Litestar guard: Litestar copies the route handler for every guard call and runs sync guards in a
thread, which together cost more than a prediction. It runs after routing (Litestar applies middleware per
route), so ``scope["route_handler"]`` and ``scope["path_params"]`` are known, and on the event loop — auth
providers must answer ``authenticate`` and ``authorize`` from memory (cache what they look up).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from litestar.datastructures import Headers
from litestar.types import ASGIApp, Receive, Scope, Send
from modelyard.actions import Catalogue
from modelyard.errors import Forbidden, PluginError, Unauthenticated
from modelyard.types import Principal

#: Paths that never need credentials, whoever registers them: Prometheus scrapes carry none, and the API's
#: documentation is readable by anyone who can reach the server.
PUBLIC_PATHS = frozenset({"/metrics", "/schema"})
PUBLIC_PREFIXES = ("/schema/",)
#: ``opt["decided_by"]`` of a route whose handler's Platform verb makes the decision.
PLATFORM = "platform"
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class _PathParams(dict):  # str.format_map over path params; a template naming an absent one keeps the braces
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def auth_middleware(app: ASGIApp) -> ASGIApp:
    """Wrap a route's ASGI app: authenticate, decide the handler's declared action unless its Platform verb
    does, then call it.

    Raises :class:`Unauthenticated` (401) when the auth provider recognises no principal and
    :class:`Forbidden` (403) when the decision denies. An exception inside the provider or a decision hook
    denies too (fails closed, STYLE 11).
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            authenticate(scope)
        await app(scope, receive, send)

    return middleware


def is_public(opt: Any, path: str) -> bool:
    """Whether a route needs no credentials: it says ``public``, or its path is public whoever serves it."""
    return bool(opt.get("public")) or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def authenticate(scope: Scope) -> None:
    """Authenticate one request, and decide it unless its handler's Platform verb does (see the module
    docstring); sets ``scope["user"]``."""
    handler = scope.get("route_handler")
    opt = handler.opt if handler is not None else {}
    if is_public(opt, scope["path"]):
        return
    platform = scope["litestar_app"].state.platform
    principal = platform.auth.authenticate(Headers.from_scope(scope))
    if principal is None:
        raise Unauthenticated("this server needs credentials: send 'Authorization: Bearer <api key>'")
    scope["user"] = principal
    if opt.get("decided_by") == PLATFORM:
        return
    action = opt.get("action")
    if action is None:  # create_app refuses such routes; one added behind its back is denied, not admitted
        raise Forbidden(f"{scope['path']} declares no action, so no one may call it")
    template = opt.get("resource", "")
    resource = template.format_map(_PathParams(scope.get("path_params") or {})) if "{" in template else template
    platform.require(principal, action, resource)


def principal_of(connection: Any) -> Principal:
    """The principal the middleware authenticated, to hand to the Platform verb that decides the request."""
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise Unauthenticated("this route needs credentials")
    return user


def principal_id(connection: Any) -> str:
    """The id of the principal the middleware authenticated (``anonymous`` on public routes)."""
    user = connection.scope.get("user")
    return getattr(user, "id", "anonymous")


# --------------------------------------------------------------------------------------------- route check
def route_problems(routes: Iterable[tuple[str, str, list[str], Any]], actions: Catalogue) -> list[str]:
    """What is wrong with each route's declaration: ``(methods and path, plugin, path parameters, opt)`` each.

    A route is public, or declares an ``action`` from the catalogue and a ``resource`` of one of the action's
    shapes; a route the middleware decides may only name its path parameters in the resource, and
    ``decided_by`` is ``"platform"`` or absent.
    """
    problems = []
    for where, plugin, params, opt in routes:
        who = f"route {where} (plugin {plugin!r})"
        action, resource, decided_by = opt.get("action"), opt.get("resource"), opt.get("decided_by")
        if opt.get("public") is True:
            if action is not None:
                problems.append(f"{who} is public and declares action {action!r}: choose one")
            continue
        if action is None:
            problems.append(f"{who} declares no action: every route says what it does, "
                            "opt={'action': <a catalogue name>, 'resource': 'models/{name}'}, or that it needs no "
                            "credentials, opt={'public': True}; until then no one may call it")
            continue
        if action not in actions:
            problems.append(f"{who}: {actions.unknown(action)}")
            continue
        if not isinstance(resource, str) or not actions.get(action).matches(resource):
            shapes = " or ".join(repr(r) for r in actions.get(action).resources)
            problems.append(f"{who}: resource {resource!r} is not a resource of {action!r} (expected {shapes})")
            continue
        if decided_by not in (None, PLATFORM):
            problems.append(f"{who}: decided_by {decided_by!r} must be {PLATFORM!r} or absent")
        elif decided_by is None:
            unknown = sorted(set(_PLACEHOLDER.findall(resource)) - set(params))
            if unknown:
                problems.append(f"{who}: resource {resource!r} names {', '.join(unknown)}, which the path does not "
                                "have; the server decides on the path (or mark the route decided_by 'platform' "
                                "when its handler's Platform verb decides)")
    return problems


def open_automatic_options(app: Any) -> None:
    """Make the OPTIONS handlers Litestar adds to every path public: they answer only ``Allow`` (the methods a
    path has), and a CORS preflight carries no credentials. An OPTIONS handler a plugin writes itself is
    declared like any other route."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            fn = getattr(handler, "_fn", None)
            if getattr(fn, "__module__", None) == "litestar.routes.http" and fn.__name__ == "options_handler":
                handler.opt["public"] = True


def check_routes(app: Any, actions: Catalogue, plugin_of: Callable[[Any], str]) -> None:
    """Refuse an app with a route that is neither public nor declares a catalogue action: a
    :class:`PluginError` naming each such route and the plugin that contributed it (deny by default)."""
    routes = []
    for route in app.routes:
        params = list(route.path_parameters)  # keyed by name
        handlers = getattr(route, "route_handlers", None) or [route.route_handler]
        if route.path in PUBLIC_PATHS or route.path.startswith(PUBLIC_PREFIXES):
            continue
        for handler in handlers:
            methods = ",".join(sorted(getattr(handler, "http_methods", ()) or ("WEBSOCKET",)))
            routes.append((f"{methods} {route.path}", plugin_of(handler), params, handler.opt))
    problems = route_problems(routes, actions)
    if problems:
        raise PluginError(f"the server cannot start: {len(problems)} route(s) without a valid declaration "
                          "of what they do:\n  " + "\n  ".join(problems))
