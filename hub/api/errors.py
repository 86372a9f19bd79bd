"""The web layer's routes: each wrapped once with JSON errors and its authorization, and a catch-all
that answers 404 and 405 in JSON. The error answers themselves are hub.http_errors."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from hub import keys
from hub.http_errors import error_response, json_errors


def add_json_routes(app: web.Application, routes: Iterable[web.RouteDef]) -> None:
    """Add `routes`, each wrapped once: JSON errors and the authorization it declares (hub.access.auth)."""
    # create_app always sets AUTH; an app without it (a test's bare app) has no logins to check.
    auth = app.get(keys.AUTH)
    wrap = auth.wrap if auth is not None else json_errors
    app.add_routes([web.RouteDef(r.method, r.path, wrap(r.handler), r.kwargs) for r in routes])


async def _not_routed(request: web.Request) -> web.Response:
    """404 or 405 in JSON: reached only when no other route took the request."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            _, methods = await resource.resolve(request)
            allowed |= methods
    if allowed:
        response = error_response(405, "method_not_allowed", f"{request.method} is not allowed here; "
                                  f"allowed: {', '.join(sorted(allowed))}")
        response.headers["Allow"] = ",".join(sorted(allowed))
        return response
    return error_response(404, "not_found", "Not Found")


def add_not_routed(app: web.Application) -> None:
    """A route that answers every request no other route takes (aiohttp's own 404 and 405 are text).

    Add it last. aiohttp tries the longest fixed path prefix first, so a route added later still
    wins, unless its path has no fixed first segment ("/" itself, "/{name}"): those share this
    route's prefix and are tried in the order they were added.
    """
    app.router.add_route("*", "/{path:.*}", _not_routed)


def is_not_routed(route: web.AbstractRoute) -> bool:
    """Whether `route` is add_not_routed's catch-all (no API of its own: the OpenAPI document skips it)."""
    return route.handler is _not_routed
