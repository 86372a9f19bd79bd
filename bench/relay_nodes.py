"""Several hubs' outbox relays on one database (issue 15): the events/s that N relays, each in a process
of its own as each hub's is, publish together from one outbox, against raw pika confirm-publishing of
the same bodies measured in the same run (bench/relay_floor.py).

    python bench/relay_nodes.py --database-url postgresql+asyncpg://... [--relays 3] [--events 20000]
                                [--batch 500] [--rounds 3]

The relays start once and stay connected. Each round commits the events in one transaction and
times from that commit until the relays together have marked every one published; what each relay
published shows how the work was shared, and their sum beyond the events is the duplicates (none
expected: leases give each event to one relay). The floor is one raw pika publisher with as many
messages unconfirmed as one relay may have. On a 2-core machine N relays share the cores with the
broker and the database, so the aggregate says whether leasing holds the rate up, not that it scales.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
import uuid

if __package__ in (None, ""):  # `python bench/x.py`: the project root, not bench/, heads sys.path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from sqlalchemy import func, select  # noqa: E402

from bench.relay import clear_outbox, commit_rows, outbox_rows  # noqa: E402
from bench.relay_floor import DEFAULT_URL, _broker_admin, raw_pika_confirm_publish  # noqa: E402
from hub.broker.relay import MAX_IN_FLIGHT_BATCHES, OutboxRelay  # noqa: E402
from hub.storage.engine import create_engine  # noqa: E402
from hub.storage.migrate import upgrade  # noqa: E402
from hub.storage.models import outbox  # noqa: E402

COUNTER_EVERY_S = 0.005


def relay_process(database_url: str, amqp_url: str, exchange: str, batch: int,
                  ready, stop, published) -> None:
    """One hub's relay: connects, says so, and keeps `published` current until told to stop."""

    async def run() -> None:
        engine = create_engine(database_url)
        relay = OutboxRelay(engine, amqp_url=amqp_url, exchange=exchange, batch_size=batch,
                            poll_interval_s=0.02)
        await relay.start()
        try:
            while relay.state != "connected":
                await asyncio.sleep(0.005)
            ready.set()
            while not stop.is_set():
                published.value = relay.published
                await asyncio.sleep(COUNTER_EVERY_S)
        finally:
            await relay.stop()
            await engine.dispose()

    asyncio.run(run())


async def one_round(engine, rows: list[dict], counters) -> tuple[float, list[int]]:
    await clear_outbox(engine)
    before = [c.value for c in counters]
    await commit_rows(engine, rows)
    started = time.perf_counter()
    while sum(c.value for c in counters) - sum(before) < len(rows):
        await asyncio.sleep(0.002)
    while await pending(engine):  # only if some event went out twice and was counted twice
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    return len(rows) / elapsed, [c.value - b for c, b in zip(counters, before, strict=True)]


async def pending(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).where(outbox.c.published_at.is_(None)))).scalar_one()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--database-url", required=True,
                        help="postgresql+asyncpg://... (a database of its own: the outbox is emptied)")
    parser.add_argument("--relays", type=int, default=3)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
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
    engine = create_engine(args.database_url)
    await upgrade(engine)
    await clear_outbox(engine)
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    counters = [spawn.Value("q", 0) for _ in range(args.relays)]
    readies = [spawn.Event() for _ in range(args.relays)]
    processes = [spawn.Process(target=relay_process, daemon=True,
                               args=(args.database_url, args.url, exchange, args.batch, ready, stop, counter))
                 for ready, counter in zip(readies, counters, strict=True)]
    floors, rates, shares = [], [], []
    try:
        for process in processes:
            process.start()
        for ready in readies:
            await asyncio.to_thread(ready.wait, 120)
        for _ in range(args.rounds):
            rows = outbox_rows(args.events)
            bodies = [r["body"].encode() for r in rows]
            floors.append(await raw_pika_confirm_publish(args.url, exchange, bodies, window,
                                                         message_ids=[str(r["event_id"]) for r in rows]))
            await asyncio.to_thread(_broker_admin, args.url, purge)
            rate, share = await one_round(engine, rows, counters)
            rates.append(rate)
            shares.append(share)
            await asyncio.to_thread(_broker_admin, args.url, purge)
    finally:
        stop.set()
        for process in processes:
            process.join(30)
        await engine.dispose()
        await asyncio.to_thread(_broker_admin, args.url, ("queue_delete", {"queue": queue}),
                                ("exchange_delete", {"exchange": exchange}))
    floor, rate = statistics.median(floors), statistics.median(rates)
    duplicates = sum(sum(s) - args.events for s in shares)
    print(f"relay nodes bench: {args.relays} relays (a process each) on one database, "
          f"{args.events} events of {len(bodies[0])} B, batch {args.batch}, median of {args.rounds} rounds, "
          f"{engine.dialect.name}")
    print(f"published by each relay, per round                   : {shares}  ({duplicates} duplicates)")
    print(f"floor  raw pika confirm-publish (window {window})   : {floor:9.0f} msg/s")
    print(f"{args.relays} outbox relays together (lease, publish, mark)  : {rate:9.0f} events/s")
    print(f"ratio                                                : {rate / floor:9.2f}")


if __name__ == "__main__":
    asyncio.run(main())
