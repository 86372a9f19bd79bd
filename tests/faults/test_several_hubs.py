"""Several `omnihub serve` processes on one database (issue 15): they start together on an empty
database, and with a real broker each event reaches the exchange once, in order per profile."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json

import aiohttp
import pika
from sqlalchemy import text

from hub.storage.engine import create_engine
from tests.faults.harness import HubProcess, HubProcesses
from tests.hub.amqp_consumer import BoundQueue
from tests.hub.conftest import eventually
from tests.hub.payloads import sms

HUBS = 3
STILL_ALIVE_AFTER_S = 3.0


async def start_together(hub_processes: HubProcesses, settings: dict, count: int = HUBS) -> list[HubProcess]:
    config = hub_processes.config(settings)
    hubs = [hub_processes.start(config) for _ in range(count)]
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(hub.wait_healthy(http) for hub in hubs))
    return hubs


async def assert_all_up_and_staying_up(hubs: list[HubProcess]) -> None:
    await asyncio.sleep(STILL_ALIVE_AFTER_S)  # a hub that lost a start-up race exits soon after
    async with aiohttp.ClientSession() as http:
        for hub in hubs:
            assert hub.alive(), f"a hub exited; log: {hub.log_path}"
            async with http.get(f"{hub.base}/healthz") as resp:
                assert resp.status == 200, hub.log_text()[-2000:]


async def test_three_hubs_start_together_on_an_empty_postgresql_database(hub_processes, fresh_pg_url):
    hubs = await start_together(hub_processes, {"database_url": fresh_pg_url})
    await assert_all_up_and_staying_up(hubs)
    # The schema was built once: one row in alembic_version, and a hub can store an interaction.
    engine = create_engine(fresh_pg_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar_one() == 1
    finally:
        await engine.dispose()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{hubs[2].base}/v1/interactions", json=sms("010-1500-0001")) as resp:
            assert resp.status == 201


async def test_three_hubs_start_together_on_one_empty_sqlite_file(hub_processes, tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/omnihub.db"
    hubs = await start_together(hub_processes, {"database_url": url, "blob_dir": str(tmp_path / "blobs")})
    await assert_all_up_and_staying_up(hubs)
    async with aiohttp.ClientSession() as http:
        for n, hub in enumerate(hubs):
            async with http.post(f"{hub.base}/v1/interactions", json=sms(f"010-1500-{n:04d}")) as resp:
                assert resp.status == 201, await resp.text()


PROFILES = 300
PER_PROFILE = 10  # 3,000 interactions
CONCURRENT_PROFILES = 24


async def post_each_profiles_interactions_in_turn(hubs: list[HubProcess]) -> dict[str, list[str]]:
    """Each profile's interactions one after another (each answered before the next is sent), and its
    n-th one to hub (profile + n) % 3, so consecutive events of a profile are written by different hubs.
    Returns, per profile id, its interaction ids in the order they were stored."""
    stored: dict[str, list[str]] = collections.defaultdict(list)
    slots = asyncio.Semaphore(CONCURRENT_PROFILES)
    refs = itertools.count()

    async def one_profile(http: aiohttp.ClientSession, p: int) -> None:
        async with slots:
            for n in range(PER_PROFILE):
                hub = hubs[(p + n) % len(hubs)]
                body = sms(f"010-7{p:03d}-0000", ref=f"SH-{next(refs)}")
                async with http.post(f"{hub.base}/v1/interactions", json=body) as resp:
                    assert resp.status == 201, await resp.text()
                    created = await resp.json()
                stored[created["profile_id"]].append(created["id"])

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(one_profile(http, p) for p in range(PROFILES)))
    return stored


def read_everything(queue: BoundQueue) -> list[tuple[pika.BasicProperties, dict, str]]:
    """Every message in the queue (as many as it holds now), read with a consumer of our own."""
    conn = pika.BlockingConnection(pika.URLParameters(queue.url))
    try:
        channel = conn.channel()
        waiting = channel.queue_declare(queue.name, passive=True).method.message_count
        got: list[tuple[pika.BasicProperties, dict, str]] = []
        for method, props, body in channel.consume(queue.name, auto_ack=True, inactivity_timeout=60):
            if method is None:
                break  # counted but never delivered: the comparison below shows what is missing
            got.append((props, json.loads(body), method.routing_key))
            if len(got) == waiting:
                break
        channel.cancel()
        return got
    finally:
        conn.close()


async def outbox_rows(url: str) -> list:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(
                "SELECT seq, event_id, subject, published_at, returned_at, failed_reason, claimed_by"
                " FROM outbox ORDER BY seq"
            ))).all()
    finally:
        await engine.dispose()


async def test_three_hubs_on_one_database_publish_each_event_once_in_order_per_profile(
    hub_processes, fresh_pg_url, amqp_url, run_prefix, tmp_path
):
    exchange = f"{run_prefix}.events.several-hubs"
    queue = BoundQueue(amqp_url, exchange, "#", run_prefix)
    queue.declare()  # before the hubs start: every event they publish is routed and kept
    try:
        hubs = await start_together(hub_processes, {
            "database_url": fresh_pg_url, "amqp_url": amqp_url, "events_exchange": exchange,
            "backoffice": {"commands_enabled": False}, "blob_dir": str(tmp_path / "blobs"),
            "relay_poll_interval_s": 0.2, "log_level": "WARNING",
        })
        stored = await post_each_profiles_interactions_in_turn(hubs)

        async def all_confirmed() -> bool:
            rows = await outbox_rows(fresh_pg_url)
            return bool(rows) and all(r.published_at is not None for r in rows)

        await eventually(all_confirmed, timeout=180, interval=0.5)
        rows = await outbox_rows(fresh_pg_url)
        # Confirmed means enqueued: the queue now holds every message the hubs published.
        got = await asyncio.to_thread(read_everything, queue)
    finally:
        queue.delete()
    assert all(hub.alive() for hub in hubs)

    # Nothing stored twice, nothing lost.
    assert sum(len(ids) for ids in stored.values()) == PROFILES * PER_PROFILE
    assert len({i for ids in stored.values() for i in ids}) == PROFILES * PER_PROFILE
    assert not [r for r in rows if r.failed_reason or r.returned_at]
    ids = [props.message_id for props, _, _ in got]
    assert set(ids) == {str(r.event_id) for r in rows}
    duplicates = len(ids) - len(set(ids))
    share = duplicates / len(set(ids))
    leases = [r.claimed_by for r in rows if r.claimed_by]  # one on the first row of each run leased
    relays = set(leases)
    print(f"\n{len(rows)} events, {len(ids)} messages from {HUBS} hubs ({len(relays)} relays, {len(leases)} "
          f"leases): {duplicates} published more than once ({share:.2%})")
    assert share < 0.01
    assert len(relays) >= 2  # else the figure above says nothing about hubs sharing an outbox

    # A profile's events arrived in the order they happened (first copies; consumers dedupe). Each
    # profile's interactions were sent one after another, so that order is the outbox's.
    first_copies = list(dict.fromkeys(ids))
    seq_of = {str(r.event_id): r.seq for r in rows}
    subject_of = {str(r.event_id): r.subject for r in rows}
    arrived: dict[str | None, list[int]] = collections.defaultdict(list)
    for event_id in first_copies:
        arrived[subject_of[event_id]].append(seq_of[event_id])
    out_of_order = {subject: seqs for subject, seqs in arrived.items() if seqs != sorted(seqs)}
    assert not out_of_order, f"{len(out_of_order)} profiles out of order, e.g. {out_of_order.popitem()}"
    received = collections.defaultdict(list)
    seen = set()
    for _, event, _ in got:
        if event["type"] == "interaction.received" and event["id"] not in seen:
            seen.add(event["id"])
            received[event["subject"]].append(event["data"]["id"])
    assert received == stored
