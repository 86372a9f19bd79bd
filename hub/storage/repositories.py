"""Repository functions: each takes the connection of the caller's unit of work.

They are batch-shaped (many keys per statement) because the ingest writer commits groups of
interactions together; one statement per batch, not per row, keeps a durable ingest cheap.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .models import identifiers, interactions, outbox, profile_merges, profiles

RefKey = tuple[str, str, str]  # (channel, provider, provider_ref)
IdentKey = tuple[str, str]  # (type, value)

# Keeps each IN list under SQLite's bound-parameter limit, with room for tuple members.
_CHUNK = 400


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def find_interactions_by_ref(
    conn: AsyncConnection, refs: Sequence[RefKey]
) -> dict[RefKey, tuple[uuid.UUID, uuid.UUID | None]]:
    # Grouped by (channel, provider) with a plain IN on provider_ref: SQLite answers a row-value
    # IN with a full table scan, but this form searches the unique index on both backends.
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for channel, provider, ref in refs:
        groups[(channel, provider)].append(ref)
    found: dict[RefKey, tuple[uuid.UUID, uuid.UUID | None]] = {}
    cols = interactions.c
    for (channel, provider), provider_refs in groups.items():
        for chunk in _chunks(provider_refs):
            rows = await conn.execute(
                select(cols.provider_ref, cols.id, cols.profile_id).where(
                    cols.channel == channel, cols.provider == provider, cols.provider_ref.in_(chunk)
                )
            )
            for ref, iid, pid in rows:
                found[(channel, provider, ref)] = (iid, pid)
    return found


async def find_identifiers(conn: AsyncConnection, keys: Sequence[IdentKey]) -> dict[IdentKey, uuid.UUID]:
    groups: dict[str, list[str]] = defaultdict(list)
    for kind, value in keys:
        groups[kind].append(value)
    found: dict[IdentKey, uuid.UUID] = {}
    cols = identifiers.c
    for kind, values in groups.items():
        for chunk in _chunks(values):
            rows = await conn.execute(
                select(cols.value, cols.profile_id).where(cols.type == kind, cols.value.in_(chunk))
            )
            for value, pid in rows:
                found[(kind, value)] = pid
    return found


async def load_profiles(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    found: dict[uuid.UUID, dict[str, Any]] = {}
    for chunk in _chunks(list(ids)):
        rows = await conn.execute(select(profiles).where(profiles.c.id.in_(chunk)))
        for row in rows.mappings():
            data = dict(row)
            data["attributes"] = json.loads(data["attributes"])
            found[data["id"]] = data
    return found


async def get_profile(conn: AsyncConnection, profile_id: uuid.UUID) -> dict[str, Any] | None:
    """A profile, following merges to the survivor."""
    for _ in range(16):
        found = await load_profiles(conn, [profile_id])
        row = found.get(profile_id)
        if row is None or row["merged_into"] is None:
            return row
        profile_id = row["merged_into"]
    return None


async def profile_identifiers(conn: AsyncConnection, profile_id: uuid.UUID) -> list[IdentKey]:
    rows = await conn.execute(
        select(identifiers.c.type, identifiers.c.value)
        .where(identifiers.c.profile_id == profile_id)
        .order_by(identifiers.c.type, identifiers.c.value)
    )
    return [(t, v) for t, v in rows]


async def insert_rows(conn: AsyncConnection, table, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(table), list(rows))


async def merge_profiles(
    conn: AsyncConnection, survivor: uuid.UUID, merged: uuid.UUID, *, at: datetime, reason: str
) -> dict[str, Any]:
    """Re-point the merged profile's identifiers and interactions to the survivor, with an audit row.

    Returns what moved; the audit row keeps the same so the merge can be undone.
    """
    moved_idents = await profile_identifiers(conn, merged)
    moved_interactions = [
        str(i)
        for (i,) in await conn.execute(select(interactions.c.id).where(interactions.c.profile_id == merged))
    ]
    await conn.execute(update(identifiers).where(identifiers.c.profile_id == merged).values(profile_id=survivor))
    await conn.execute(
        update(interactions).where(interactions.c.profile_id == merged).values(profile_id=survivor)
    )
    await conn.execute(
        update(profiles).where(profiles.c.id == merged).values(merged_into=survivor, updated_at=at)
    )
    await conn.execute(
        update(profiles)
        .where(profiles.c.id == survivor)
        .values(updated_at=at, version=profiles.c.version + 1)
    )
    moved = {"identifiers": [f"{t}:{v}" for t, v in moved_idents], "interactions": moved_interactions}
    await conn.execute(
        insert(profile_merges).values(
            id=uuid.uuid4(), survivor_id=survivor, merged_id=merged, merged_at=at, reason=reason,
            moved=json.dumps(moved),
        )
    )
    return moved


async def fetch_pending_events(conn: AsyncConnection, *, after_seq: int, limit: int) -> list[Any]:
    cols = outbox.c
    rows = await conn.execute(
        select(cols.seq, cols.event_id, cols.routing_key, cols.body, cols.created_at)
        .where(cols.published_at.is_(None), cols.seq > after_seq)
        .order_by(cols.seq)
        .limit(limit)
    )
    return list(rows)


async def mark_published(
    conn: AsyncConnection, seqs: Sequence[int], returned: Sequence[int], *, at: datetime
) -> None:
    for chunk in _chunks(list(seqs), 900):
        await conn.execute(update(outbox).where(outbox.c.seq.in_(chunk)).values(published_at=at))
    for chunk in _chunks(list(returned), 900):
        await conn.execute(update(outbox).where(outbox.c.seq.in_(chunk)).values(returned_at=at))


async def find_event_seq(conn: AsyncConnection, event_id: str) -> int | None:
    return (await conn.execute(select(outbox.c.seq).where(outbox.c.event_id == uuid.UUID(event_id)))).scalar()


async def mark_failed(conn: AsyncConnection, seq: int, reason: str, *, at: datetime) -> None:
    """Take a row that can never be published out of the queue, keeping it and the reason."""
    await conn.execute(
        update(outbox).where(outbox.c.seq == seq).values(published_at=at, failed_reason=reason[:2000])
    )


async def outbox_backlog(conn: AsyncConnection) -> tuple[int, datetime | None]:
    """Pending event count and the creation time of the oldest pending one (outbox lag)."""
    row = (
        await conn.execute(
            select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.published_at.is_(None))
        )
    ).one()
    oldest = row[1]
    if isinstance(oldest, str):  # SQLite returns MIN() of a datetime column as text
        oldest = datetime.fromisoformat(oldest)
    return int(row[0]), oldest
