"""`POST /v1/campaigns` and `GET /v1/campaigns/{id}` (DESIGN section 8; hub.outbound.campaigns)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from hub import keys
from hub.access.auth import Scope, requires
from hub.api.openapi import body
from hub.http_errors import error_response, json_response
from hub.outbound.campaigns import CampaignRequest, create, stats, view_of
from hub.outbound.messages import OutboundRefused
from hub.storage.engine import writer

routes = web.RouteTableDef()


@routes.post("/v1/campaigns")
@requires(Scope.CAMPAIGNS_WRITE)
@body(CampaignRequest)
async def post_campaign(request: web.Request) -> web.Response:
    """Schedule a campaign: 201 with its id; it starts at `start_at` (default now)."""
    spec = CampaignRequest.model_validate_json(await request.read())
    try:
        async with writer(request.app[keys.ENGINE]).begin() as conn:  # type: ignore[union-attr]
            row = await conn.run_sync(create, spec, request.app[keys.TEMPLATES], datetime.now(UTC))
    except OutboundRefused as exc:
        return error_response(exc.status, exc.error, f"{exc.field}: {exc.message}",
                              [{"field": exc.field, "message": exc.message}])
    request.app[keys.CAMPAIGNS].notify()
    return json_response(_utc(view_of(row)), status=201, headers={"Location": f"/v1/campaigns/{row['id']}"})


@routes.get("/v1/campaigns/{id}")
@requires(Scope.CAMPAIGNS_READ)
async def get_campaign(request: web.Request) -> web.Response:
    """A campaign's progress and results: targeted, queued, skipped by reason, sent, delivered,
    failed, responded, converted."""
    try:
        campaign_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        return error_response(404, "not_found", "no such campaign", [{"field": "id", "message": "not a UUID"}])
    async with request.app[keys.ENGINE].connect() as conn:
        found = await conn.run_sync(stats, campaign_id, datetime.now(UTC))
    if found is None:
        return error_response(404, "not_found", "no such campaign")
    return json_response(_utc(found))


def _utc(view: dict[str, Any]) -> dict[str, Any]:
    """hub.outbound.campaigns writes its times as isoformat text with the database's +00:00; read
    back as datetimes, the answer writes them like every other time (RFC 3339, UTC, `Z`)."""
    return {k: datetime.fromisoformat(v) if k.endswith("_at") and isinstance(v, str) else v for k, v in view.items()}
