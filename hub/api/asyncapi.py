"""`GET /v1/asyncapi.json`: the AsyncAPI 3.0 document of the events and commands (DESIGN section 11)."""

from __future__ import annotations

from aiohttp import web

from hub import keys
from hub.access.auth import PUBLIC, requires
from hub.broker.asyncapi import document
from hub.broker.topology import Topology
from hub.http_errors import json_response

routes = web.RouteTableDef()


@routes.get("/v1/asyncapi.json")
@requires(PUBLIC)
async def asyncapi(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    return json_response(document(Topology.from_settings(settings)))
