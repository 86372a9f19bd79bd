"""Connector throughput: events/s from committed outbox rows, through the relay and a real broker,
into each worker's target (sql, file, http), beside raw pika consume+ack of the same messages
measured in the same run.

    python bench/connectors.py [--events 20000] [--sql-url URL]

Each target is timed on its own: its worker (a real `omnihub worker` process, prefetch 100, batch
100) is started and consuming an empty queue, the outbox is filled in one transaction, and the
clock runs from the relay's wake-up to the last event the target has committed (the SQL target's
handled-events table, the file target's ledger, the HTTP receiver's set of accepted ids). The
floor is a plain pika BlockingConnection consumer acking every message of a queue holding the same
number of messages (prefetch 100): the most a one-process consumer gets from this broker here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # `python bench/x.py`: the project root, not bench/, heads sys.path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import pika  # noqa: E402
import yaml  # noqa: E402
from aiohttp import web  # noqa: E402
from sqlalchemy import delete  # noqa: E402

from bench.relay_floor import DEFAULT_URL  # noqa: E402
from hub.broker import outbox_store as repo  # noqa: E402
from hub.broker.amqp import ConfirmPublisher, OutgoingMessage  # noqa: E402
from hub.broker.events import event_row  # noqa: E402
from hub.broker.relay import OutboxRelay  # noqa: E402
from hub.broker.topology import Topology, declare_consumer_queue, declare_exchanges  # noqa: E402
from hub.storage.engine import create_engine  # noqa: E402
from hub.storage.migrate import upgrade  # noqa: E402
from hub.storage.models import outbox  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECRET = "whsec_YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldC0wMQ=="


def outbox_rows(count: int) -> list[dict]:
    now = datetime.now(UTC)
    return [event_row("profile.updated", now=now, subject=uuid.uuid4(),
                      data={"profile_id": f"P{n:08d}", "changed": {"tier": "gold"}, "display_name": f"Customer {n}",
                            "n": n, "source": "bench"}) for n in range(count)]


def _channel(url: str):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    return conn, conn.channel()


def raw_consume_ack(url: str, exchange: str, queue: str, count: int) -> float:
    """Fill a queue with `count` messages, then time a plain consumer acking each one."""
    conn, ch = _channel(url)
    ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_bind(queue, exchange, "floor.#")
    conn.close()

    async def fill() -> None:
        publisher = ConfirmPublisher(url, exchange)
        await publisher.connect()
        body = outbox_rows(1)[0]["body"].encode()
        for start in range(0, count, 1000):
            await publisher.publish_batch([OutgoingMessage("floor.x", body, str(i)) for i in range(start, min(count, start + 1000))])
        await publisher.close()

    asyncio.run(fill())
    conn, ch = _channel(url)
    ch.basic_qos(prefetch_count=100)
    got = 0
    started = time.perf_counter()
    for method, _props, _body in ch.consume(queue, inactivity_timeout=5):
        if method is None:
            break
        ch.basic_ack(method.delivery_tag)
        got += 1
        if got == count:
            break
    elapsed = time.perf_counter() - started
    ch.cancel()
    ch.queue_delete(queue)
    conn.close()
    assert got == count, f"floor consumed {got} of {count}"
    return count / elapsed


class Receiver:
    """An HTTP endpoint counting distinct webhook-ids (what a Standard Webhooks receiver dedupes on)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def hook(request: web.Request) -> web.Response:
            await request.read()
            self.ids.add(request.headers["webhook-id"])
            return web.Response(status=204)

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            app = web.Application()
            app.router.add_post("/hook", hook)
            runner = web.AppRunner(app, access_log=None)
            self.loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        ready.wait(10)


def _worker(kind: str, config: dict, tmp: Path) -> subprocess.Popen:
    path = tmp / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.Popen([sys.executable, "-m", "hub.cli", "worker", kind, "--config", str(path), "--log-level",
                             "WARNING"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _consumers(url: str, queue: str) -> int:
    conn, ch = _channel(url)
    try:
        return ch.queue_declare(queue, passive=True).method.consumer_count
    finally:
        conn.close()


async def through_target(kind: str, target: dict, counter, args, engine, rows, prefix: str, tmp: Path) -> float:
    t = Topology(events_exchange=f"{prefix}.events", dead_exchange=f"{prefix}.dead", dead_queue=f"{prefix}.dead",
                 commands_exchange=f"{prefix}.commands")
    queue = f"{prefix}.worker.{kind}"
    config = {"amqp_url": args.url, "name": kind, "queue": queue, "bindings": ["profile.*"],
              "events_exchange": t.events_exchange, "commands_exchange": t.commands_exchange,
              "dead_exchange": t.dead_exchange, "dead_queue": t.dead_queue, "target": target}
    proc = _worker(kind, config, tmp)
    relay = OutboxRelay(engine, amqp_url=args.url, exchange=t.events_exchange, batch_size=500, poll_interval_s=0.05)
    try:
        while await asyncio.to_thread(_consumers_or_zero, args.url, queue) < 1:
            if proc.poll() is not None:
                raise SystemExit(f"{kind} worker exited with {proc.returncode}")
            await asyncio.sleep(0.05)
        async with engine.begin() as conn:
            await conn.execute(delete(outbox))
            for start in range(0, len(rows), 1000):
                await repo.insert_rows(conn, outbox, rows[start:start + 1000])
        await relay.start()
        started = time.perf_counter()
        while counter() < len(rows):
            if proc.poll() is not None:
                raise SystemExit(f"{kind} worker exited with {proc.returncode}")
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
    finally:
        await relay.stop()
        proc.terminate()
        proc.wait(15)
        conn, ch = _channel(args.url)
        ch.queue_delete(queue)
        conn.close()
    return len(rows) / elapsed


def _consumers_or_zero(url: str, queue: str) -> int:
    try:
        return _consumers(url, queue)
    except pika.exceptions.ChannelClosedByBroker:
        return 0  # not declared yet


def _sqlite_count(path: Path, sql: str):
    def count() -> int:
        if not path.exists():
            return 0
        try:
            with sqlite3.connect(path, timeout=1) as conn:
                return conn.execute(sql).fetchone()[0]
        except sqlite3.OperationalError:
            return 0
    return count


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    prefix = f"bench.{uuid.uuid4().hex[:8]}"
    rows = outbox_rows(args.events)
    t = Topology(events_exchange=f"{prefix}.events", dead_exchange=f"{prefix}.dead", dead_queue=f"{prefix}.dead",
                 commands_exchange=f"{prefix}.commands")
    conn, ch = _channel(args.url)
    declare_exchanges(ch, t)
    conn.close()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/hub.db")
        await upgrade(engine)
        try:
            results["floor"] = await asyncio.to_thread(raw_consume_ack, args.url, t.events_exchange, f"{prefix}.floor",
                                                       args.events)
            legacy = tmp / "legacy.db"
            with sqlite3.connect(legacy) as db:
                db.execute("CREATE TABLE customers (customer_id TEXT PRIMARY KEY, name TEXT, tier TEXT, n INTEGER)")
            results["sql"] = await through_target(
                "sql", {"url": f"sqlite:///{legacy}", "table": "customers", "key": ["customer_id"],
                        "columns": {"customer_id": "data.profile_id", "name": "data.display_name",
                                    "tier": "data.changed.tier", "n": "data.n"}},
                _sqlite_count(legacy, "SELECT count(*) FROM omnihub_handled_events"), args, engine, rows, prefix, tmp)
            drop = tmp / "drop"
            results["file"] = await through_target(
                "file", {"dir": str(drop), "format": "fixed", "rotate_records": 5000, "rotate_seconds": 1,
                         "fields": [{"name": "id", "source": "data.profile_id", "width": 10},
                                    {"name": "name", "source": "data.display_name", "width": 30},
                                    {"name": "n", "source": "data.n", "width": 9, "align": "right", "pad": "0"}]},
                _sqlite_count(drop / ".omnihub-work" / "ledger.db", "SELECT count(*) FROM handled"),
                args, engine, rows, prefix, tmp)
            receiver = Receiver()
            results["http"] = await through_target(
                "http", {"url": receiver.url, "secret": SECRET, "concurrency": 32}, lambda: len(receiver.ids),
                args, engine, rows, prefix, tmp)
        finally:
            await engine.dispose()
            conn, ch = _channel(args.url)
            ch.queue_delete(t.dead_queue)
            for x in (t.events_exchange, t.commands_exchange, t.dead_exchange):
                ch.exchange_delete(x)
            conn.close()
    floor = results["floor"]
    print(f"connectors bench: {args.events} profile.updated events, quorum queues, prefetch 100, batch 100, "
          f"outbox on SQLite, one round each")
    print(f"floor  raw pika consume+ack (BlockingConnection, prefetch 100)   : {floor:8.0f} msg/s")
    for kind, what in (("sql", "sql    outbox -> relay -> broker -> worker -> SQLite upsert+ledger"),
                       ("file", "file   outbox -> relay -> broker -> worker -> fixed-width files "),
                       ("http", "http   outbox -> relay -> broker -> worker -> signed POSTs     ")):
        print(f"{what} : {results[kind]:8.0f} events/s  ({results[kind] / floor:.2f} of the floor)")
    print(json.dumps({k: round(v) for k, v in results.items()}))


if __name__ == "__main__":
    asyncio.run(main())
