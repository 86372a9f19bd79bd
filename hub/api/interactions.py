"""`POST /v1/interactions`: the generic inbound path for systems that have no adapter yet."""

from __future__ import annotations

import time
import uuid

from aiohttp import web
from sqlalchemy import select

from hub import keys
from hub.access.auth import Scope, requires
from hub.api.confine import profile_refusal
from hub.api.openapi import body
from hub.http_errors import answer_for, answers_its_errors, error_response
from hub.storage.models import interactions
from schemas import Interaction

routes = web.RouteTableDef()


@routes.post("/v1/interactions")
@requires(Scope.INTERACTIONS_WRITE)
@body(Interaction)
@answers_its_errors
async def post_interaction(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    app = request.app
    auth = app[keys.AUTH]
    try:
        if auth.enabled:  # inline: the busiest route has no wrapper to check in (see json_errors)
            refusal = await auth.authorize(Scope.INTERACTIONS_WRITE, request)
            if refusal is not None:
                return refusal
        body = await request.read()
        interaction = Interaction.model_validate_json(body, context=app[keys.VALIDATION_CONTEXT])
        result = await app[keys.PIPELINE].ingest(interaction)
    except Exception as exc:  # noqa: BLE001 - answered here: the busiest route skips json_errors' layer
        return answer_for(request, exc)
    metrics = app[keys.METRICS]
    metrics.count_ingested(interaction.channel, result.created)
    metrics.ingests.observe(time.perf_counter() - started)
    interaction_id = str(result.interaction_id)
    # Formatted rather than json.dumps'd: two UUIDs and a flag need no escaping, and this answer
    # is on every ingest's path.
    payload = '{"id":"%s","profile_id":%s,"created":%s}' % (
        interaction_id,
        f'"{result.profile_id}"' if result.profile_id else "null",
        "true" if result.created else "false",
    )
    return web.Response(
        text=payload,
        content_type="application/json",
        status=201 if result.created else 200,
        headers={"Location": f"/v1/interactions/{interaction_id}"},
    )


@routes.get("/v1/interactions/{id}")
@requires(Scope.INTERACTIONS_READ)
async def get_interaction(request: web.Request) -> web.Response:
    try:
        interaction_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        return error_response(400, "invalid_id", "not a UUID", [{"field": "id", "message": "not a UUID"}])
    async with request.app[keys.ENGINE].connect() as conn:
        row = (await conn.execute(
            select(interactions.c.document, interactions.c.profile_id).where(interactions.c.id == interaction_id)
        )).first()
    if row is None:
        return error_response(404, "not_found", "no such interaction")
    if (refusal := await profile_refusal(request, row.profile_id)) is not None:  # an agent: its customers' only
        return refusal
    # The stored document carries the profile at ingest; merges since then re-point the column.
    document = Interaction.model_validate_json(row.document)
    document.profile_id = row.profile_id
    return web.Response(text=document.model_dump_json(exclude_none=True, by_alias=True),
                        content_type="application/json")
