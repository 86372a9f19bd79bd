"""Health, readiness and the published JSON Schemas."""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy import text

from hub import keys
from hub.access.auth import PUBLIC, requires
from hub.broker import outbox_store as repo
from hub.http_errors import json_response
from schemas.export import json_schema

routes = web.RouteTableDef()


@routes.get("/healthz")
@requires(PUBLIC)
async def healthz(_request: web.Request) -> web.Response:
    return json_response({"status": "alive"})


@routes.get("/readyz")
@requires(PUBLIC)
async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and every background loop is healthy (hub.tasks): 503 while
    one fails (the broker or the database it needs is away) or is stuck (busy without progress for
    `loop_stuck_after_s`). Ingest itself goes on without the broker: its events wait in the outbox."""
    database: dict[str, object] = {"status": "up"}
    try:
        async with asyncio.timeout(3):
            async with request.app[keys.ENGINE].connect() as conn:
                await conn.execute(text("SELECT 1"))
                pending, oldest = await repo.outbox_backlog(conn)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        database = {"status": "down", "error": type(exc).__name__}
        pending, oldest = None, None
    loops = request.app[keys.LOOPS]
    ready = database["status"] == "up" and loops.ready()
    body = {
        "status": "ready" if ready else "not_ready",
        "database": database,
        "broker": request.app[keys.RELAY].status(),
        # Reported, not required: ingest goes on while the router starts or another hub routes.
        "routing": request.app[keys.ROUTER].status(),
        "outbox": {"pending": pending, "oldest_pending_at": oldest.isoformat() if oldest else None},
        "loops": loops.status(),
    }
    return web.json_response(body, status=200 if ready else 503)


@routes.get("/v1/schema/{name}")
@requires(PUBLIC)
async def schema(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        return json_response(json_schema(name))
    except KeyError:
        raise web.HTTPNotFound(reason="Unknown schema") from None
