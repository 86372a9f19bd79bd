"""A call's later reports applied to its stored interaction (adapters.base.CallUpdate).

A call is one interaction, ingested when it starts (Twilio's "a call comes in" webhook, a PBX's
call_started); what the provider says afterwards (ringing, answered, completed after 95 s,
no-answer, a recording) is merged into that interaction's `call` and `metadata` in one transaction
with an `interaction.updated` event carrying the whole document, so the customer's timeline and
the back office see the outcome. A repeated or stale report (Twilio retries, a late "ringing")
changes nothing and emits nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.base import CallUpdate, CallUpdated
from hub.broker.events import event_row
from hub.storage.engine import writer
from hub.storage.models import interactions, outbox
from schemas import EventType, Interaction, call_status_rank


def apply_call_update(conn: Connection, channel: str, provider: str, upd: CallUpdate, *,
                      context: Mapping[str, Any], now: datetime) -> CallUpdated | None:
    """Merge the report into the stored call. None when no such interaction is stored."""
    c = interactions.c
    row = conn.execute(
        select(c.id, c.profile_id, c.document)
        .where(c.channel == channel, c.provider == provider, c.provider_ref == upd.provider_ref)
        .with_for_update()  # PostgreSQL: two reports of one call merge one after the other
    ).first()
    if row is None:
        return None
    document = json.loads(row.document)
    merged = merge_call(document.get("call") or {}, upd.call.model_dump(by_alias=True, exclude_none=True))
    metadata = {**document.get("metadata", {}), **upd.metadata}
    if merged == (document.get("call") or {}) and metadata == document.get("metadata", {}):
        return CallUpdated(row.id, row.profile_id, changed=False)
    document["call"], document["metadata"] = merged, metadata
    # Validated as a whole, so the stored document stays one the schema accepts.
    text = Interaction.model_validate(document, context=dict(context)).model_dump_json(exclude_none=True,
                                                                                   by_alias=True)
    conn.execute(update(interactions).where(c.id == row.id).values(document=text))
    conn.execute(outbox.insert().values(**event_row(
        EventType.INTERACTION_UPDATED, now=now, data_json=text, channel=channel, subject=row.profile_id)))
    return CallUpdated(row.id, row.profile_id, changed=True, status=merged.get("status"))


def merge_call(stored: dict[str, Any], reported: dict[str, Any]) -> dict[str, Any]:
    """The stored call with the reported fields; the status only moves forward, and the first
    outcome of an ended call stays (see schemas.call_status_rank)."""
    merged = {**stored, **reported}
    old, new = stored.get("status"), reported.get("status")
    if new is not None and old is not None:
        old_rank, new_rank = call_status_rank(old), call_status_rank(new)
        if new_rank < old_rank or (new_rank == old_rank == 3 and new != old):
            merged["status"] = old
    return merged


async def apply_call_update_async(engine: AsyncEngine, channel: str, provider: str, upd: CallUpdate, *,
                                  context: Mapping[str, Any], notify: Callable[[], None],
                                  now: datetime) -> CallUpdated | None:
    async with writer(engine).begin() as conn:  # type: ignore[union-attr]
        result = await conn.run_sync(apply_call_update, channel, provider, upd, context=context, now=now)
    if result is not None and result.changed:
        notify()
    return result
