"""Repository functions for the API and the relay: each takes the caller's async connection.

The ingest writer's own statements are in ingest_store (synchronous, run inside its unit of work).

Several hubs on one database (issue 15): each hub's relay leases the rows it is about to publish,
so an event is published by one relay, and more than once only when a relay stops between the
broker's confirm and the mark, or stalls past its lease (LEASE_S) and a live relay takes the rows
over. Why leases on rows and not one active relay per partition: relays share the load without
knowing how many there are, and a stopped hub's rows move on once its lease runs out (a session
advisory lock would stay held by a hub whose connection went silent, for as long as TCP takes to
notice).

A lease covers a run of rows with unbroken sequence numbers, all of them rows the relay read, and is
written on the run's first row only: `claimed_by`, `claimed_until` and `claimed_through` (the run's
last sequence number). Leasing a batch is thus one small update, not one per row (a row holds its
serialized event, so rewriting every row to lease it would double what publishing writes). A lease
ends when its batch is marked (its first row is then published) or when its time runs out.

A profile's events reach the exchange in the order they happened (DESIGN section 5), so a relay
leaves any row behind an earlier unpublished row of the same subject that another relay's lease
covers (events without a subject count as one subject), and publishes what it leased in sequence
order on one channel. While hub A holds profile P's early events, hub B reads on past P's later
ones: A's next read takes them (its own leases do not hold it back), or, once A's batch is marked,
whichever relay reads first. Rows a stopped relay held are taken over, with the later ones, in order:
after any duplicates the first copy of each event still arrived in order.

Leasing must see every other relay's leases, which FOR UPDATE SKIP LOCKED does not give: two relays
leasing at once would each see the other's rows as free, and a skipped locked row of P would let P's
later rows through. So leasing is serialized: on PostgreSQL by a transaction advisory lock (a few
short statements per batch, so relays queue on it for milliseconds), on SQLite by the write lock
its one writer takes anyway (the caller's transaction begins IMMEDIATE). On PostgreSQL the lease
times come from the database's clock, so hubs' clocks need not agree.
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
    IMMEDIATE: the writer engine). `after_seq` is 0 when nothing of the claimant's is in flight (a
    new broker session, or idle): what it still holds is then taken back. Otherwise its own leases
    stay out of reach, to it as well, even past their time: it is publishing them.
    """
    cols = outbox.c
    now = await _lock_leases(conn)
    if after_seq == 0:
        await conn.execute(
            update(outbox).where(_LEASE_MARK, cols.claimed_by == claimant).values(claimed_until=None)
        )
    leases = (await conn.execute(
        select(cols.seq, cols.claimed_through, cols.claimed_by, cols.claimed_until).where(_LEASE_MARK)
    )).all()
    # The same rows stay out of a relay's reach while another relay publishes them.
    mine = [(lease.seq, lease.claimed_through) for lease in leases if lease.claimed_by == claimant]
    others = [(lease.seq, lease.claimed_through) for lease in leases
              if lease.claimed_by != claimant and lease.claimed_until >= now]
    candidates = (await conn.execute(
        select(cols.seq, cols.subject, cols.event_id, cols.routing_key, cols.body)
        .where(cols.published_at.is_(None), *(~cols.seq.between(lo, hi) for lo, hi in _merged(mine + others)))
        .order_by(cols.seq)
        .limit(limit)
    )).all()
    if not candidates:
        return []
    first_held: dict[str | None, int] = {}
    if others:
        first_held = dict((await conn.execute(
            select(cols.subject, func.min(cols.seq))
            .where(cols.published_at.is_(None), cols.seq < candidates[-1].seq,
                   or_(*(cols.seq.between(lo, hi) for lo, hi in others)))
            .group_by(cols.subject)
        )).all())
    taken, runs = _runs(candidates, first_held)
    if runs:
        until = now + timedelta(seconds=lease_s)
        await conn.execute(
            update(outbox).where(cols.seq == bindparam("first"))
            .values(claimed_by=claimant, claimed_until=until, claimed_through=bindparam("last")),
            [{"first": first, "last": last} for first, last in runs],
        )
    return taken


# The first rows of runs under lease (or once leased by a relay that is still publishing them).
_LEASE_MARK = outbox.c.published_at.is_(None) & outbox.c.claimed_until.is_not(None)


async def _lock_leases(conn: AsyncConnection) -> datetime:
    """Wait for the leasing lock (SQLite: the caller's write lock); the time leases are judged by."""
    if conn.dialect.name != "postgresql":
        return datetime.now(UTC)
    return (await conn.execute(
        text("SELECT clock_timestamp() FROM (SELECT pg_advisory_xact_lock(:key)) AS leasing"),
        {"key": LEASE_LOCK_KEY},
    )).scalar_one()


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _runs(
    candidates: Sequence[Any], first_held: dict[str | None, int]
) -> tuple[list[Any], list[tuple[int, int]]]:
    """The candidates not behind another relay's row of their subject, and the runs of them to lease.

    A run is unbroken sequence numbers, every one a row read here: a lease covers nothing it did
    not read. A gap ends it, whatever made the gap: a row another relay holds or has published, a
    row left behind here, or a row whose transaction had not committed (it will, and must then be
    free to take, before the later events of its subject).
    """
    taken: list[Any] = []
    runs: list[tuple[int, int]] = []
    for row in candidates:
        if first_held.get(row.subject, row.seq) < row.seq:
            continue
        if runs and runs[-1][1] == row.seq - 1:
            runs[-1] = (runs[-1][0], row.seq)
        else:
            runs.append((row.seq, row.seq))
        taken.append(row)
    return taken, runs


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
