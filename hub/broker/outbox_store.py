"""Repository functions for the API and the relay: each takes the caller's async connection.

The ingest writer's own statements are in ingest_store (synchronous, run inside its unit of work).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.storage.models import identifiers, outbox


async def insert_rows(conn: AsyncConnection, table, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(table), list(rows))


async def profile_identifiers(conn: AsyncConnection, profile_id: uuid.UUID) -> list[tuple[str, str]]:
    rows = await conn.execute(
        select(identifiers.c.type, identifiers.c.value)
        .where(identifiers.c.profile_id == profile_id)
        .order_by(identifiers.c.type, identifiers.c.value)
    )
    return [(t, v) for t, v in rows]


def _chunks(items: Sequence[Any], size: int = 900) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def fetch_pending_events(conn: AsyncConnection, *, after_seq: int, limit: int) -> list[Any]:
    cols = outbox.c
    rows = await conn.execute(
        select(cols.seq, cols.event_id, cols.routing_key, cols.body)
        .where(cols.published_at.is_(None), cols.seq > after_seq)
        .order_by(cols.seq)
        .limit(limit)
    )
    return list(rows)


async def mark_published(
    conn: AsyncConnection, seqs: Sequence[int], returned: Sequence[int], *, at: datetime
) -> None:
    for column, ids in (("published_at", seqs), ("returned_at", returned)):
        for chunk in _chunks(list(ids), 900):
            await conn.execute(update(outbox).where(_seq_in(conn, chunk)).values({column: at}))


def _seq_in(conn: AsyncConnection, seqs: Sequence[int]) -> ColumnElement[bool]:
    # PostgreSQL takes the whole list as one array parameter: one prepared statement for any size,
    # where an IN list of N parameters is a new statement for every N.
    if conn.dialect.name == "postgresql":
        return outbox.c.seq == any_(bindparam("seqs", list(seqs), type_=ARRAY(BigInteger)))
    return outbox.c.seq.in_(seqs)


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


async def outbox_by_routing_key(conn: AsyncConnection) -> dict[str, dict[str, int]]:
    """Per routing key, how many events wait for the broker and how many it has confirmed.

    One scan of the table: it is for a person looking (`GET /v1/outbox`), not for the relay.
    """
    waiting = outbox.c.published_at.is_(None)
    rows = await conn.execute(
        select(outbox.c.routing_key,
               func.count().filter(waiting),
               func.count().filter(~waiting & outbox.c.failed_reason.is_(None)))
        .group_by(outbox.c.routing_key)
        .order_by(outbox.c.routing_key)
    )
    return {key: {"pending": int(pending), "published": int(published)} for key, pending, published in rows}
