"""The outbox relay through outages of what it needs, with the real PostgreSQL and RabbitMQ behind
TCP proxies the tests cut or silence: it keeps going by itself, /readyz says when it cannot, and
the events written meanwhile all arrive once it can."""

from __future__ import annotations

import logging

import pytest

from hub import keys
from hub.app import create_app
from hub.settings import load_settings
from tests.hub.conftest import eventually
from tests.hub.payloads import sms
from tests.hub.test_tasks import loop_lines
from tests.hub.test_tasks_db_outage import direct_url, hub_settings, pg_proxy  # noqa: F401 (fixtures)
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.rabbitmq

RESTORED_WITHIN_S = 10.0  # what an operator is promised once the service is back (relay_backoff_max_s 0.5 here)


def via(proxy: TcpProxy) -> str:
    return f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"


async def _true(value) -> bool:
    return value


async def readyz(client) -> tuple[int, dict]:
    resp = await client.get("/readyz")
    return resp.status, await resp.json()


@pytest.fixture
async def broker():
    proxy = TcpProxy(5672)  # not listening until a test starts it
    yield proxy
    proxy.resume()
    await proxy.stop()


@pytest.mark.postgres
async def test_events_pending_through_a_database_cut_are_all_published_once_it_returns(
        aiohttp_client, hub_settings, pg_proxy, broker, exchange, received_queue, caplog):
    caplog.set_level(logging.INFO, "omnihub.loops")
    client = await aiohttp_client(create_app(hub_settings(amqp_url=via(broker), events_exchange=exchange)))
    relay = client.app[keys.RELAY].supervised
    created = [await client.post("/v1/interactions", json=sms(f"010-6200-{i:04d}")) for i in range(10)]
    assert all(r.status == 201 for r in created)  # the broker is away: 20 events wait in the outbox

    await pg_proxy.stop()
    await broker.start()  # the broker is back, the database is not: nothing can be read to publish
    await eventually(lambda: _true(client.app[keys.RELAY].state == "connected"), timeout=30)
    failures = relay.failures
    await eventually(lambda: _true(relay.failures >= failures + 3), timeout=30)
    status, body = await readyz(client)
    assert status == 503
    assert body["loops"]["outbox-relay"]["state"] == "failing"
    assert body["loops"]["outbox-relay"]["error"] != "BrokerUnavailable"  # it is the database's now
    assert body["broker"]["state"] == "connected"

    await pg_proxy.start()
    got = await received_queue.adrain(10, timeout=RESTORED_WITHIN_S)
    assert {e["data"]["id"] for _, e, _ in got} == {(await r.json())["id"] for r in created}
    await eventually(lambda: _ready(client), timeout=30)
    # One outage, from the broker's absence through the database's: one line each way.
    assert loop_lines(caplog.records, "outbox-relay") == [("WARNING", "failing"), ("INFO", "recovered")]


async def _ready(client) -> bool:
    return (await readyz(client))[0] == 200


async def test_a_silent_broker_is_noticed_by_heartbeats_and_events_flow_when_it_speaks_again(
        aiohttp_client, sqlite_url, broker, exchange, received_queue, caplog):
    caplog.set_level(logging.INFO)
    settings = load_settings(None, database_url=sqlite_url, amqp_url=via(broker), events_exchange=exchange,
                             relay_poll_interval_s=0.2, relay_backoff_max_s=0.5, amqp_heartbeat_s=2,
                             backoffice={"commands_enabled": False})
    await broker.start()
    client = await aiohttp_client(create_app(settings))
    relay = client.app[keys.RELAY]
    first = await client.post("/v1/interactions", json=sms("010-6300-0000"))
    assert len(await received_queue.adrain(1)) == 1
    assert await _ready(client)

    broker.silence()  # the socket stays open; nothing passes either way
    await eventually(lambda: _true(relay.state == "down"), timeout=30)
    # Our heartbeat watch ended it (pika's own checker says "No activity or too many missed heartbeats").
    assert "silent" in (relay.last_error or "")
    status, body = await readyz(client)
    assert status == 503 and body["loops"]["outbox-relay"]["state"] == "failing"
    during = [await client.post("/v1/interactions", json=sms(f"010-6300-{i:04d}")) for i in range(1, 6)]
    assert all(r.status == 201 for r in during)  # ingest goes on without the broker

    broker.resume()
    got = await received_queue.adrain(5, timeout=30)
    assert {e["data"]["id"] for _, e, _ in got} == {(await r.json())["id"] for r in during}
    await eventually(lambda: _ready(client), timeout=30)
    assert (await first.json())["id"]
    assert loop_lines(caplog.records, "outbox-relay") == [("WARNING", "failing"), ("INFO", "recovered")]
    pika_lines = [r for r in caplog.records if r.name.startswith("pika") and r.levelno >= logging.WARNING]
    assert len(pika_lines) <= 3, [r.getMessage() for r in pika_lines]
