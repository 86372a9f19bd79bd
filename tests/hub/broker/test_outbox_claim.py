"""Relays leasing outbox rows (hub.broker.outbox_store.claim_pending_events) on SQLite and PostgreSQL:
each row to one relay, a profile's later events never ahead of its earlier ones, a lease that ran
out taken over."""

from __future__ import annotations

import asyncio
import collections
import random
from datetime import UTC, datetime

from sqlalchemy import select, update

from hub.broker import outbox_store as repo
from hub.broker.events import event_row
from hub.storage.engine import writer
from hub.storage.models import outbox

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


async def add_events(engine, *subjects: str | None, first: int = 0) -> list[int]:
    """One outbox row per subject given, in that order, numbered from `first` in their data; returns
    their sequence numbers."""
    now = datetime.now(UTC)
    rows = [event_row("profile.updated", now=now, subject=s, data={"n": n})
            for n, s in enumerate(subjects, start=first)]
    async with writer(engine).begin() as conn:
        await repo.insert_rows(conn, outbox, rows)
        ids = [r["event_id"] for r in rows]
        found = await conn.execute(select(outbox.c.seq).where(outbox.c.event_id.in_(ids)))
        return sorted(seq for (seq,) in found)


async def lease(engine, claimant: str, *, after_seq: int = 0, limit: int = 100) -> list[int]:
    async with writer(engine).begin() as conn:
        rows = await repo.claim_pending_events(conn, claimant, after_seq=after_seq, limit=limit)
    return [r.seq for r in rows]


async def publish(engine, seqs: list[int]) -> None:
    """What the relay does once the broker confirmed them."""
    async with writer(engine).begin() as conn:
        await repo.mark_published(conn, seqs, [], at=datetime.now(UTC))


async def run_out_leases_of(engine, claimant: str) -> None:
    """The claimant's hub stopped LEASE_S ago: its leases have run out (no waiting on a clock)."""
    async with writer(engine).begin() as conn:
        await conn.execute(
            update(outbox).where(outbox.c.claimed_by == claimant).values(claimed_until=LONG_AGO)
        )


async def test_two_relays_lease_disjoint_rows_in_sequence_order(engine):
    seqs = await add_events(engine, *(f"p{n}" for n in range(10)))
    a = await lease(engine, "hub-a", limit=4)
    b = await lease(engine, "hub-b", limit=100)
    assert a == seqs[:4]
    assert b == seqs[4:]
    assert await lease(engine, "hub-c") == []  # everything is leased and the leases run


async def test_a_profiles_later_events_wait_while_another_relay_holds_its_earlier_ones(engine):
    p1, q1, p2, r1, q2 = await add_events(engine, "P", "Q", "P", "R", "Q")
    assert await lease(engine, "hub-a", limit=2) == [p1, q1]
    # P and Q have earlier events out with hub-a: hub-b takes only R's, and reads on past P and Q.
    assert await lease(engine, "hub-b") == [r1]
    await publish(engine, [p1, q1])  # hub-a's confirm came back
    assert await lease(engine, "hub-b", after_seq=r1) == [p2, q2]


async def test_events_without_a_subject_keep_their_order_as_one_subject(engine):
    first, p1, second = await add_events(engine, None, "P", None)
    assert await lease(engine, "hub-a", limit=1) == [first]
    assert await lease(engine, "hub-b") == [p1]
    await publish(engine, [first])
    assert await lease(engine, "hub-b", after_seq=p1) == [second]


async def test_a_lease_that_ran_out_is_taken_over_with_the_later_events_in_order(engine):
    p1, p2 = await add_events(engine, "P", "P")
    assert await lease(engine, "dead-hub", limit=1) == [p1]  # then SIGKILLed, before the broker confirmed
    p3, q1 = await add_events(engine, "P", "Q")
    assert await lease(engine, "hub-b") == [q1]
    await run_out_leases_of(engine, "dead-hub")
    assert await lease(engine, "hub-b", after_seq=q1) == [p1, p2, p3]
    assert await lease(engine, "hub-c") == []  # hub-b holds them now


async def test_a_row_left_behind_is_not_held_by_the_run_around_it(engine):
    p1, q1, p2, q2 = await add_events(engine, "P", "Q", "P", "Q")
    assert await lease(engine, "hub-a", limit=1) == [p1]
    assert await lease(engine, "hub-b") == [q1, q2]  # P's second event waits behind hub-a's first
    await publish(engine, [p1])
    assert await lease(engine, "hub-c") == [p2]  # though hub-b's batch is still in flight


async def test_an_event_committed_after_its_neighbours_were_leased_goes_before_its_profiles_next(engine):
    a1, p1, a2 = await add_events(engine, "A", "P", "A")
    async with writer(engine).begin() as conn:  # as if P's first event's transaction had not committed
        late = (await conn.execute(select(outbox).where(outbox.c.seq == p1))).mappings().one()
        await conn.execute(outbox.delete().where(outbox.c.seq == p1))
    assert await lease(engine, "hub-a") == [a1, a2]
    async with writer(engine).begin() as conn:
        await repo.insert_rows(conn, outbox, [dict(late)])  # it commits; then P's next event happens
    [p2] = await add_events(engine, "P")
    # hub-a's lease covers only the rows it read, so P's first event is free, and goes first.
    assert await lease(engine, "hub-a", after_seq=a2) == [p1, p2]


async def test_a_relay_takes_back_its_own_leases_after_a_failed_session(engine):
    seqs = await add_events(engine, "P", "Q", "P")
    assert await lease(engine, "hub-a") == seqs
    # Still in flight (the relay reads on after the last row it has): nothing new to take.
    assert await lease(engine, "hub-a", after_seq=seqs[-1]) == []
    assert await lease(engine, "hub-b") == []
    # The broker session ended before the confirms: a new session starts over at 0.
    assert await lease(engine, "hub-a", after_seq=0) == seqs


async def test_published_rows_are_not_leased_again(engine):
    seqs = await add_events(engine, "P", "Q")
    await publish(engine, await lease(engine, "hub-a"))
    await run_out_leases_of(engine, "hub-a")
    assert await lease(engine, "hub-b") == []
    async with engine.connect() as conn:
        published = (await conn.execute(
            select(outbox.c.seq).where(outbox.c.published_at.is_not(None))
        )).scalars()
        assert sorted(published) == seqs


async def test_relays_leasing_at_once_publish_each_event_once_and_each_profile_in_order(engine):
    subjects = [f"profile-{n % 17}" if n % 11 else None for n in range(1500)]
    await add_events(engine, *subjects)
    exchange: list[int] = []  # what the broker would have received, in order
    rng = random.Random(15)

    async def relay(name: str) -> None:
        after_seq, idle = 0, 0
        while idle < 3:
            seqs = await lease(engine, name, after_seq=after_seq, limit=rng.randint(1, 60))
            if not seqs:
                idle, after_seq = idle + 1, 0
                await asyncio.sleep(0.01)
                continue
            idle, after_seq = 0, seqs[-1]
            exchange.extend(seqs)  # published on one channel, in the order leased
            await asyncio.sleep(0)  # other relays lease between the publish and the mark
            await publish(engine, seqs)

    await asyncio.gather(*(relay(f"hub-{n}") for n in range(4)))
    async with engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.seq, outbox.c.subject, outbox.c.published_at))).all()
    assert all(r.published_at is not None for r in rows)
    assert sorted(exchange) == sorted(r.seq for r in rows)  # every event, none twice
    subject_of = {r.seq: r.subject for r in rows}
    by_subject: dict[str | None, list[int]] = collections.defaultdict(list)
    for seq in exchange:
        by_subject[subject_of[seq]].append(seq)
    assert all(seqs == sorted(seqs) for seqs in by_subject.values())
