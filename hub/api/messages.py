"""`POST /v1/messages` and `GET /v1/messages/{id}`: send a message on a channel (DESIGN section 8).

202 means the message is durably queued: the dispatcher sends it, and its state moves on with the
provider's status callbacks. A repeated `idempotency_key` answers 200 with the first message.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select

from hub import keys
from hub.access.auth import Scope, forbidden, requires, restricted_agent
from hub.api.confine import profile_refusal
from hub.api.openapi import body
from hub.channels.runtime import channel_adapters
from hub.http_errors import error_response, json_response
from hub.outbound.messages import MessageRequest, OutboundRefused, accept
from hub.storage.engine import writer
from hub.storage.models import interactions
from hub.storage.outbound_models import messages

routes = web.RouteTableDef()


@routes.post("/v1/messages")
@requires(Scope.MESSAGES_WRITE)
@body(MessageRequest)
async def post_message(request: web.Request) -> web.Response:
    req = MessageRequest.model_validate_json(await request.read(), context=request.app[keys.VALIDATION_CONTEXT])
    if restricted_agent(request) is not None and (refusal := await _agent_may_send(request, req)) is not None:
        return refusal
    channels = channel_adapters(request.app)
    try:
        async with writer(request.app[keys.ENGINE]).begin() as conn:  # type: ignore[union-attr]
            row, created = await conn.run_sync(accept, req, adapters=channels, now=datetime.now(UTC),
                                                 templates=request.app[keys.TEMPLATES],
                                                 quiet_hours=request.app[keys.SETTINGS].quiet_hours)
    except OutboundRefused as exc:
        return error_response(exc.status, exc.error, f"{exc.field}: {exc.message}",
                              [{"field": exc.field, "message": exc.message}])
    request.app[keys.DISPATCHER].notify()
    return json_response(_view(row), status=202 if created else 200,
                             headers={"Location": f"/v1/messages/{row['id']}"})


@routes.get("/v1/messages/{id}")
@requires(Scope.MESSAGES_READ)
async def get_message(request: web.Request) -> web.Response:
    try:
        message_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        return error_response(404, "not_found", "no such message", [{"field": "id", "message": "not a UUID"}])
    async with request.app[keys.ENGINE].connect() as conn:
        row = (await conn.execute(select(messages).where(messages.c.id == message_id))).mappings().first()
    if row is None:
        return error_response(404, "not_found", "no such message")
    if (refusal := await profile_refusal(request, row["profile_id"])) is not None:
        return refusal
    return json_response(_view(row))


async def _agent_may_send(request: web.Request, req: MessageRequest) -> web.Response | None:
    """An agent user writes only to the customers of its own tasks: in reply to their interactions,
    or to their profiles; never to a bare address."""
    if req.to is not None:
        return forbidden(Scope.MESSAGES_WRITE, "an agent replies to its tasks' customers (in_reply_to or "
                                               "profile_id), not to an address")
    targets = [req.profile_id] if req.profile_id is not None else []
    if req.in_reply_to is not None:
        async with request.app[keys.ENGINE].connect() as conn:
            targets.append((await conn.execute(select(interactions.c.profile_id)
                                               .where(interactions.c.id == req.in_reply_to))).scalar())
    for profile_id in targets:
        if (refusal := await profile_refusal(request, profile_id)) is not None:
            return refusal
    return None


def _view(row: Any) -> dict[str, Any]:
    request = json.loads(row["request"] or "{}")
    return {
        "id": str(row["id"]), "channel": row["channel"], "adapter": row["adapter"], "state": row["state"],
        "purpose": row["purpose"], "to": {"type": row["to_type"], "value": row["to_value"]},
        "profile_id": _s(row["profile_id"]), "in_reply_to": _s(row["in_reply_to"]),
        "conversation_key": request.get("conversation_key"), "provider": row.get("provider"),
        "provider_ref": row.get("provider_ref"), "interaction_id": _s(row.get("interaction_id")),
        "attempts": row["attempts"], "not_before": row.get("not_before"),
        "error": ({"code": row.get("error_code"), "message": row.get("error_message")}
                                               if row.get("error_code") else None),
        "created_at": row["created_at"], "updated_at": row["updated_at"],
    }


def _s(value: Any) -> str | None:
    return None if value is None else str(value)
