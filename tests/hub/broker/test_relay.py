"""The outbox relay against the real RabbitMQ broker."""

from __future__ import annotations

import pytest

from hub import keys
from hub.app import create_app
from tests.hub.conftest import count_rows, eventually
from tests.hub.payloads import sms
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.rabbitmq


async def pending(app) -> int:
    async with app[keys.ENGINE].connect() as conn:
        from sqlalchemy import text

        return (await conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))).scalar_one()


async def test_ingested_interaction_arrives_as_a_cloudevent(aiohttp_client, make_settings, amqp_url, exchange,
                                                           received_queue):
    client = await aiohttp_client(create_app(make_settings(amqp_url=amqp_url, events_exchange=exchange)))
    created = await (await client.post("/v1/interactions", json=sms("010-1234-5678"))).json()
    [(props, event, key)] = await received_queue.adrain(1)
    assert key == "interaction.received.sms"
    assert event["specversion"] == "1.0"
    assert event["type"] == "interaction.received"
    assert event["data"]["id"] == created["id"]
    assert event["subject"] == created["profile_id"]
    assert props.message_id == event["id"]
    assert props.delivery_mode == 2
    # Marked published only after the confirm; the profile.created event had no queue bound and was
    # returned by the broker: kept, not lost.
    await eventually(lambda: _zero(pending(client.app)))
    ready = await (await client.get("/readyz")).json()
    assert ready["broker"]["state"] == "connected"


async def _zero(awaitable) -> bool:
    return (await awaitable) == 0


async def test_events_wait_while_the_broker_is_unreachable_and_flow_when_it_returns(
    aiohttp_client, make_settings, exchange, received_queue
):
    proxy = TcpProxy(5672)  # not listening yet: the broker is "down"
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"
    client = await aiohttp_client(create_app(make_settings(amqp_url=url, events_exchange=exchange)))
    first = [await client.post("/v1/interactions", json=sms(f"010-6000-{i:04d}")) for i in range(10)]
    assert all(r.status == 201 for r in first)
    assert await pending(client.app) == 20  # 10 interactions + 10 new profiles
    assert (await (await client.get("/readyz")).json())["broker"]["state"] in {"down", "connecting"}

    await proxy.start()  # the broker comes back
    got = await received_queue.adrain(10)
    assert len(got) == 10
    await eventually(lambda: _zero(pending(client.app)))

    await proxy.stop()  # an outage while connected
    second = [await client.post("/v1/interactions", json=sms(f"010-6001-{i:04d}")) for i in range(10)]
    assert all(r.status == 201 for r in second)
    await proxy.start()
    got += await received_queue.adrain(10)
    ids = {e["data"]["id"] for _, e, _ in got}
    assert ids == {(await r.json())["id"] for r in first + second}
    await proxy.stop()


async def test_a_burst_is_published_in_order(aiohttp_client, make_settings, amqp_url, exchange, received_queue):
    import asyncio

    client = await aiohttp_client(create_app(make_settings(amqp_url=amqp_url, events_exchange=exchange,
                                                           relay_batch_size=50)))
    # One customer: its events must reach the exchange in the order they were committed.
    responses = []
    for _ in range(6):
        responses += await asyncio.gather(*(client.post("/v1/interactions", json=sms("010-8888-0000"))
                                            for _ in range(50)))
    got = await received_queue.adrain(300, timeout=30)
    assert len(got) == 300
    published = [e["data"]["id"] for _, e, _ in got]
    assert published == sorted(published)  # UUIDv7 ids are assigned in ingest order
    assert await count_rows(client.app, "interactions") == 300


async def test_an_unpublishable_event_is_set_aside_and_the_rest_flow(aiohttp_client, make_settings, amqp_url,
                                                                     exchange, received_queue):
    from datetime import UTC, datetime

    from sqlalchemy import text

    from hub.broker import outbox_store as repo
    from hub.broker.events import event_row
    from hub.storage.models import outbox

    client = await aiohttp_client(create_app(make_settings(amqp_url=amqp_url, events_exchange=exchange)))
    bad = event_row("interaction.received", now=datetime.now(UTC), data={}, channel="sms")
    bad["routing_key"] = "interaction.received." + "가" * 200  # 600+ bytes: AMQP allows 255
    async with client.app[keys.ENGINE].begin() as conn:
        await repo.insert_rows(conn, outbox, [bad])
    created = [await (await client.post("/v1/interactions", json=sms(f"010-6100-{i:04d}"))).json()
               for i in range(3)]
    # The set-aside restarts the session, so a batch already in flight may be sent again:
    # delivery is at least once and consumers dedupe on message_id, as this one does.
    got = await received_queue.adrain(6, timeout=3)
    assert {props.message_id for props, _, _ in got} == {e["id"] for _, e, _ in got}
    assert {e["data"]["id"] for _, e, _ in got} == {c["id"] for c in created}
    await eventually(lambda: _zero(pending(client.app)))
    async with client.app[keys.ENGINE].connect() as conn:
        reason = (await conn.execute(text("SELECT failed_reason FROM outbox WHERE failed_reason IS NOT NULL"))).scalar()
    assert reason and "255" in reason
