"""Repository functions for the API and the relay: each takes the caller's async connection.

The ingest writer's own statements are in ingest_store (synchronous, run inside its unit of work).

Several hubs on one database (issue 15): each hub's relay leases the rows it is about to publish
(`claimed_by`, `claimed_until`), so an event is published by one relay, and more than once only when
a relay stops between the broker's confirm and the mark, or stalls past its lease (LEASE_S) and a
live relay takes the rows over. Why leases on rows and not one active relay per partition: relays
share the load without knowing how many there are, a stopped hub's rows move on once its lease runs
out (a session advisory lock would stay held by a hub whose connection went silent, for as long as
TCP takes to notice), and nothing but the outbox itself is kept.

A profile's events reach the exchange in the order they happened (DESIGN section 5), so a relay
leases an event only if no other relay holds an unexpired lease on an earlier unpublished event of
the same subject (events without a subject count as one subject); it publishes its leased rows in
sequence order on one channel, so its own earlier rows go first. While hub A holds a lease on
profile P's early events, hub B leaves P's later ones (and reads on past them); whichever relay
leases after A has marked them takes them. A lease taken over from a stopped relay takes its rows
and the later ones in order, so after any duplicates the first copy of each event still arrived in
order.

Leasing must see every other relay's leases, which FOR UPDATE SKIP LOCKED does not give: two relays
leasing at once each see the other's rows as unleased, and a skipped locked row of P would let P's
later rows through. So leasing is serialized: on PostgreSQL by a transaction advisory lock (one
short statement per batch of rows, so relays queue on it for milliseconds), on SQLite by the write
lock its one writer takes anyway (the caller's transaction begins IMMEDIATE). The lease update
re-checks that the row is still unpublished, so a row a stalled relay marked meanwhile is not sent
again. On PostgreSQL the lease times come from the database's clock, so hubs' clocks need not agree.
"""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, bindparam, func, insert, or_, select, text, update
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


# Longer than a batch takes from lease to mark (a confirm round trip, tens of milliseconds), short
# enough that a stopped hub's events wait half a minute at most.
LEASE_S = 30.0
# pg_advisory_xact_lock's key for leasing outbox rows: the ASCII of "outbox".
LEASE_LOCK_KEY = 0x6F7574626F78


def new_claimant() -> str:
    """A relay's name on the rows it leases: host and process for a person reading the table, and a
    random part, so two relays in one process (tests, benches) are two claimants."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


async def claim_pending_events(
    conn: AsyncConnection, claimant: str, *, after_seq: int, limit: int, lease_s: float = LEASE_S
) -> list[Any]:
    """Lease up to `limit` unpublished events for `claimant` and return them in sequence order.

    Run in a transaction of its own that is committed before publishing (on SQLite one begun
    IMMEDIATE: the writer engine). Takes unleased rows, rows whose lease ran out, and the claimant's
    own leased rows after `after_seq`: the relay passes 0 when nothing of its own is in flight (a
    new session, or idle), which takes back what a failed session had leased. Leaves every row
    behind an earlier unpublished row of the same subject that another relay holds.
    """
    cols = outbox.c
    if conn.dialect.name == "postgresql":
        now = (await conn.execute(
            text("SELECT clock_timestamp() FROM (SELECT pg_advisory_xact_lock(:key)) AS leasing"),
            {"key": LEASE_LOCK_KEY},
        )).scalar_one()
    else:
        now = datetime.now(UTC)
    candidates = list(await conn.execute(
        select(cols.seq, cols.subject)
        .where(cols.published_at.is_(None),
               or_(cols.claimed_until.is_(None), cols.claimed_until < now,
                   (cols.claimed_by == claimant) & (cols.seq > after_seq)))
        .order_by(cols.seq)
        .limit(limit)
    ))
    if not candidates:
        return []
    held = dict((await conn.execute(
        select(cols.subject, func.min(cols.seq))
        .where(cols.published_at.is_(None), cols.seq < candidates[-1].seq,
               cols.claimed_by != claimant, cols.claimed_until >= now)
        .group_by(cols.subject)
    )).all())
    seqs = [c.seq for c in candidates if held.get(c.subject, c.seq) >= c.seq]
    rows: list[Any] = []
    for chunk in _chunks(seqs, 900):
        rows += await conn.execute(
            update(outbox)
            .where(_seq_in(conn, chunk), cols.published_at.is_(None))
            .values(claimed_by=claimant, claimed_until=now + timedelta(seconds=lease_s))
            .returning(cols.seq, cols.event_id, cols.routing_key, cols.body)
        )
    rows.sort(key=lambda r: r.seq)
    return rows


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
