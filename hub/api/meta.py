"""Health, readiness and the published JSON Schemas."""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy import text

from hub import keys
from hub.access.auth import PUBLIC, requires
from hub.broker import outbox_store as repo
from schemas.export import json_schema

routes = web.RouteTableDef()


@routes.get("/healthz")
@requires(PUBLIC)
async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


@routes.get("/readyz")
@requires(PUBLIC)
async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers. The broker is reported, not required: without it events
    wait in the outbox and ingest goes on."""
    database: dict[str, object] = {"status": "up"}
    try:
        async with asyncio.timeout(3):
            async with request.app[keys.ENGINE].connect() as conn:
                await conn.execute(text("SELECT 1"))
                pending, oldest = await repo.outbox_backlog(conn)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        database = {"status": "down", "error": type(exc).__name__}
        pending, oldest = None, None
    relay = request.app[keys.RELAY]
    body = {
        "status": "ready" if database["status"] == "up" else "not_ready",
        "database": database,
        "broker": relay.status(),
        # Reported, not required: ingest goes on while the router starts or another hub routes.
        "routing": request.app[keys.ROUTER].status(),
        "outbox": {"pending": pending, "oldest_pending_at": oldest.isoformat() if oldest else None},
    }
    return web.json_response(body, status=200 if database["status"] == "up" else 503)


@routes.get("/v1/schema/{name}")
@requires(PUBLIC)
async def schema(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        return web.json_response(json_schema(name))
    except KeyError:
        raise web.HTTPNotFound(reason="Unknown schema") from None
