"""The agent console at `/console/` (DESIGN section 11): static files from hub/console/, served as
they are. No build step: the browser runs the ES modules it is given. `GET /` redirects here.

The page talks only to this hub (the agent websocket and the REST API), so its Content-Security-
Policy allows nothing but this origin: no CDN, no inline script, and customer text the page shows
can never run as code even if a rendering bug let it in as markup.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from hub.access.auth import PUBLIC, requires
from hub.api import openapi
from hub.http_errors import error_response

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    # Browsers refuse a module script served with a non-JavaScript type.
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_HEADERS = {
    # blob: for attachments' images, fetched with the agent's token and shown from memory.
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate each load (Last-Modified answers 304): a hub upgrade reaches agents at the next reload.
    "Cache-Control": "no-cache",
}

routes = web.RouteTableDef()


def _file(name: str) -> web.StreamResponse:
    path = CONSOLE_DIR / name
    content_type = _TYPES.get(path.suffix)
    # Only a plain file name (an encoded slash can reach the handler decoded) of a listed kind.
    if content_type is None or name != path.name or name.startswith(".") or not path.is_file():
        return error_response(404, "not_found", f"no console file {name!r}")
    return web.FileResponse(path, headers={**_HEADERS, "Content-Type": content_type})


@routes.get("/")
@requires(PUBLIC)
@openapi.answers(302, "to the agent console, /console/")
async def root(request: web.Request) -> web.Response:
    """Redirects a person to the agent console; the API is described at /v1/openapi.json.

    A browser pointed at the hub lands on something useful rather than a JSON 404."""
    raise web.HTTPFound("/console/", headers={"Link": '</v1/openapi.json>; rel="service-desc"'})


@routes.get("/console")
@requires(PUBLIC)
async def console_redirect(request: web.Request) -> web.Response:
    """The console lives at /console/ (its assets are relative to it)."""
    query = f"?{request.query_string}" if request.query_string else ""
    raise web.HTTPFound(f"/console/{query}")


@routes.get("/console/")
@requires(PUBLIC)
async def console_page(request: web.Request) -> web.StreamResponse:
    """The agent console (HTML): offers, the customer's profile and history, replies, wrap-up."""
    return _file("index.html")


@routes.get("/console/{name}")
@requires(PUBLIC)
async def console_asset(request: web.Request) -> web.StreamResponse:
    """The console's scripts and style sheet."""
    return _file(request.match_info["name"])
