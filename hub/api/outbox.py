"""`GET /v1/outbox`: the events the hub has written, by routing key, waiting or confirmed.

`/readyz` gives the backlog as one number; this says what it is made of, so someone starting the
hub without a broker can see what would flow to RabbitMQ once `amqp_url` is set.
"""

from __future__ import annotations

from aiohttp import web

from hub import keys
from hub.access.auth import Scope, requires
from hub.broker import outbox_store as repo
from hub.http_errors import json_response

routes = web.RouteTableDef()


@routes.get("/v1/outbox")
@requires(Scope.OUTBOX_READ)
async def outbox_summary(request: web.Request) -> web.Response:
    async with request.app[keys.ENGINE].connect() as conn:
        by_key = await repo.outbox_by_routing_key(conn)
    return json_response({
        "broker": request.app[keys.RELAY].status(),
        "exchange": request.app[keys.SETTINGS].events_exchange,
        "pending": sum(counts["pending"] for counts in by_key.values()),
        "routing_keys": by_key,
    })
