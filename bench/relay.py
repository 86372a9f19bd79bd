"""Outbox relay throughput: events/s from committed outbox rows to confirmed broker messages, against
raw pika confirm-publishing of the same bodies measured in the same run (bench/relay_floor.py).

    python bench/relay.py [--events 20000] [--batch 500] [--rounds 3] [--database-url URL]

The relay's figure includes reading the rows from the database and marking them published after
the confirms; the floor only publishes. Both publish to a run-unique exchange with one durable
queue bound, so every message is routed and stored. Target (issue 2): ratio >= 0.80.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime

if __package__ in (None, ""):  # `python bench/x.py`: the project root, not bench/, heads sys.path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from sqlalchemy import delete, func, select  # noqa: E402

from bench.relay_floor import DEFAULT_URL, _broker_admin, raw_pika_confirm_publish  # noqa: E402
from hub.broker import outbox_store as repo  # noqa: E402
from hub.broker.events import event_row  # noqa: E402
from hub.broker.relay import MAX_IN_FLIGHT_BATCHES, OutboxRelay  # noqa: E402
from hub.storage.engine import create_engine  # noqa: E402
from hub.storage.migrate import upgrade  # noqa: E402
from hub.storage.models import outbox  # noqa: E402
from schemas import Interaction  # noqa: E402

SAMPLE = Interaction.model_validate({
    "channel": "sms", "direction": "inbound", "kind": "message", "provider": "bench", "provider_ref": "B-1",
    "occurred_at": "2026-11-23T10:00:00+09:00", "content": {"text": "배송지 변경 부탁드립니다 " * 20},
    "sender": {"identifiers": [{"type": "phone", "value": "+821012345678"}], "display_name": "Bench Customer"},
})


def outbox_rows(count: int) -> list[dict]:
    now = datetime.now(UTC)
    data = SAMPLE.model_dump_json(exclude_none=True)
    return [event_row("interaction.received", now=now, data_json=data, channel="sms", subject=uuid.uuid4())
            for _ in range(count)]


async def run_relay(engine, url: str, exchange: str, rows: list[dict], batch: int) -> float:
    """Connect the relay first (the floor's clock also starts after connecting), then commit the
    rows in one transaction and time from that commit to the last row marked published."""
    await clear_outbox(engine)  # before the relay starts: it would publish (and count) what is left
    relay = OutboxRelay(engine, amqp_url=url, exchange=exchange, batch_size=batch, poll_interval_s=0.05)
    await relay.start()
    try:
        while relay.state != "connected":
            await asyncio.sleep(0.005)
        await commit_rows(engine, rows)
        started = time.perf_counter()
        relay.notify()
        while relay.published < len(rows):
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - started
    finally:
        await relay.stop()
    async with engine.connect() as conn:
        pending = (await conn.execute(select(func.count()).where(outbox.c.published_at.is_(None)))).scalar_one()
    assert pending == 0, f"{pending} events left unpublished"
    return len(rows) / elapsed


async def clear_outbox(engine) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(outbox))


async def commit_rows(engine, rows: list[dict]) -> None:
    async with engine.begin() as conn:
        for start in range(0, len(rows), 1000):
            await repo.insert_rows(conn, outbox, rows[start:start + 1000])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    args = parser.parse_args()

    window = args.batch * MAX_IN_FLIGHT_BATCHES
    run = uuid.uuid4().hex[:8]
    exchange, queue = f"bench.{run}.events", f"bench.{run}.sink"
    await asyncio.to_thread(
        _broker_admin, args.url,
        ("exchange_declare", {"exchange": exchange, "exchange_type": "topic", "durable": True}),
        ("queue_declare", {"queue": queue, "durable": True}),
        ("queue_bind", {"queue": queue, "exchange": exchange, "routing_key": "interaction.received.#"}),
    )
    purge = ("queue_purge", {"queue": queue})
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(args.database_url or f"sqlite+aiosqlite:///{tmp}/relay.db")
        await upgrade(engine)
        floors, relays = [], []
        try:
            for _ in range(args.rounds):
                rows = outbox_rows(args.events)
                bodies = [r["body"].encode() for r in rows]
                # The floor may have as many messages unconfirmed as the relay can (batches in flight
                # x batch size), so the comparison is of the relay's own work, not of its window.
                floors.append(await raw_pika_confirm_publish(args.url, exchange, bodies, window,
                                                             message_ids=[str(r["event_id"]) for r in rows]))
                await asyncio.to_thread(_broker_admin, args.url, purge)
                relays.append(await run_relay(engine, args.url, exchange, rows, args.batch))
                await asyncio.to_thread(_broker_admin, args.url, purge)
        finally:
            await engine.dispose()
            await asyncio.to_thread(_broker_admin, args.url, ("queue_delete", {"queue": queue}),
                                    ("exchange_delete", {"exchange": exchange}))
    floor, relay = statistics.median(floors), statistics.median(relays)
    size = len(bodies[0])
    print(f"relay bench: {args.events} events of {size} B, batch {args.batch}, median of {args.rounds} rounds, "
          f"{engine.dialect.name}")
    print(f"floor  raw pika confirm-publish (window {window})   : {floor:9.0f} msg/s")
    print(f"omnihub outbox relay (read, publish, confirm, mark)  : {relay:9.0f} events/s")
    print(f"ratio                                                : {relay / floor:9.2f}  (target >= 0.80)")


if __name__ == "__main__":
    asyncio.run(main())
