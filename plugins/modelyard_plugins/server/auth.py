"""Authentication and authorisation of every request: who is calling (the auth provider), and may they do this
(``Platform.authorize``).

Handlers declare what they do in ``opt`` — ``action`` (``"models:register"``) and ``resource`` (a template over
the path parameters, ``"models/{name}"``) — so the decision is made here, once, before the body is read, and
handlers stay free of auth logic. ``opt={"public": True}`` marks the routes that need no credentials (health);
``/metrics`` and the OpenAPI document are public whoever serves them. The principal is left in ``scope["user"]``
(``request.user``) for handlers to act as.

This is an ASGI middleware rather than a Litestar guard: Litestar copies the route handler for every guard call
and runs sync guards in a thread, which together cost more than a prediction. It runs after routing (Litestar
applies middleware per route), so ``scope["route_handler"]`` and ``scope["path_params"]`` are known, and on the
event loop — auth providers must answer ``authenticate`` and ``authorize`` from memory (cache what they look up).
"""

from __future__ import annotations

from typing import Any

from litestar.datastructures import Headers
from litestar.types import ASGIApp, Receive, Scope, Send
from modelyard.errors import Forbidden, Unauthenticated

#: Paths that never need credentials, whoever registers them: Prometheus scrapes carry none, and the API's
#: documentation is readable by anyone who can reach the server.
PUBLIC_PATHS = frozenset({"/metrics", "/schema"})
PUBLIC_PREFIXES = ("/schema/",)


class _PathParams(dict):  # str.format_map over path params; a template naming an absent one keeps the braces
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def auth_middleware(app: ASGIApp) -> ASGIApp:
    """Wrap a route's ASGI app: authenticate, authorise the handler's declared action, then call it.

    Raises :class:`Unauthenticated` (401) when the auth provider recognises no principal and
    :class:`Forbidden` (403) when the decision denies. An exception inside the provider or a decision hook
    denies too (fails closed, STYLE 11).
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            authenticate(scope)
        await app(scope, receive, send)

    return middleware


def authenticate(scope: Scope) -> None:
    """Authenticate and authorise one request (see :func:`auth_middleware`); sets ``scope["user"]``."""
    handler = scope.get("route_handler")
    opt = handler.opt if handler is not None else {}
    path = scope["path"]
    if opt.get("public") or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return
    platform = scope["litestar_app"].state.platform
    principal = platform.auth.authenticate(Headers.from_scope(scope))
    if principal is None:
        raise Unauthenticated("this server needs credentials: send 'Authorization: Bearer <api key>'")
    scope["user"] = principal
    action = opt.get("action")
    if action is None:
        return
    template = opt.get("resource", "")
    resource = template.format_map(_PathParams(scope.get("path_params") or {})) if "{" in template else template
    if not platform.authorize(principal, action, resource):
        raise Forbidden(f"{principal.id!r} may not {action} on {resource or 'this server'}")


def principal_id(connection: Any) -> str:
    """The id of the principal the middleware authenticated (``anonymous`` on public routes)."""
    user = connection.scope.get("user")
    return getattr(user, "id", "anonymous")
