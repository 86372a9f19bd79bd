"""`POST /v1/interactions`, the generic inbound path for systems that have no adapter yet;
`GET /v1/interactions/{id}` and its attachments' bytes, `GET /v1/interactions/{id}/attachments/{n}`."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiohttp import web
from sqlalchemy import select

from hub import keys
from hub.access.auth import Scope, requires
from hub.api import attachments, openapi
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
    """One interaction as stored (its profile as it is now, after any merge)."""
    found = await _readable(request)
    if isinstance(found, web.Response):
        return found
    return web.Response(text=found.model_dump_json(exclude_none=True, by_alias=True),
                        content_type="application/json")


@routes.get("/v1/interactions/{id}/attachments/{n}")
@requires(Scope.INTERACTIONS_READ)
@openapi.answers(200, "the attachment's bytes, with Content-Type, Content-Length and Content-Disposition",
                 {"*/*": {"schema": {"type": "string", "format": "binary"}}})
async def get_attachment(request: web.Request) -> web.StreamResponse:
    """One attachment's bytes: `n` counts from 0 in the interaction's `attachments`.

    Served with its content type and file name: raster images inline, anything else as a download."""
    found = await _readable(request)
    if isinstance(found, web.Response):
        return found
    text = request.match_info["n"]
    n = int(text) if text.isascii() and text.isdigit() else -1
    if not 0 <= n < len(found.attachments):
        have = f"attachments 0 to {len(found.attachments) - 1}" if found.attachments else "no attachments"
        return error_response(404, "not_found", f"no attachment {text!r}: this interaction has {have}",
                              [{"field": "n", "message": f"no such attachment; {have}"}])
    attachment = found.attachments[n]
    try:
        path = request.app[keys.BLOBS].path_of(attachment.storage_ref or "")
    except KeyError:
        path = None
    if path is None or not await asyncio.to_thread(path.is_file):
        return error_response(404, "not_stored", f"attachment {n} was recorded without its bytes",
                              [{"field": "n", "message": "no stored bytes for this attachment"}])
    content_type = attachments.media_type(attachment.content_type)
    name = attachments.file_name(attachment.filename, n)
    return web.FileResponse(path, headers={
        **attachments.HEADERS, "Content-Type": content_type,
        "Content-Disposition": attachments.disposition(name, content_type)})


async def _readable(request: web.Request) -> Interaction | web.Response:
    """The interaction `{id}` names, or the answer refusing it: 400, 404, or 403 for an agent user
    whose tasks are not about its customer (attachments are read under the same rule)."""
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
    document = Interaction.model_validate_json(row.document, context=request.app[keys.VALIDATION_CONTEXT])
    document.profile_id = row.profile_id
    return document
