"""Each kind of background loop against a PostgreSQL that goes away: the hub's engine talks to the
database through a TCP proxy the test cuts. The loop fails, keeps retrying without writing a line
per attempt, and after the proxy comes back does the work that arrived meanwhile by itself (work
another hub wrote straight into the database, or a command queued on the broker); its log holds
one failure line and one recovery line. The relay's own case is in tests/hub/broker."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select

from hub import keys
from hub.app import create_app
from hub.settings import load_settings
from hub.storage.engine import create_engine
from hub.storage.outbound_models import messages
from hub.storage.routing_models import tasks
from hub.storage.rules_models import scheduled_actions, timers
from tests import services
from tests.hub.assignment.test_routing_flow import route_from_metadata, routing_config
from tests.hub.backoffice.test_commands import _delete, publish
from tests.hub.conftest import eventually
from tests.hub.payloads import sms
from tests.hub.test_tasks import loop_lines
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_proxy():
    proxy = TcpProxy(5432)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def direct_url():
    """A database of this test's own, as the test reaches it (not through the proxy)."""
    url = services.create_pg_database(f"_{uuid.uuid4().hex[:8]}")
    yield url
    services.drop_pg_database(url)


@pytest.fixture
async def direct(direct_url):
    engine = create_engine(direct_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def hub_settings(pg_proxy, direct_url):
    def make(**overrides):
        overrides.setdefault("backoffice", {"commands_enabled": False})
        return load_settings(None, database_url=direct_url.replace(":5432/", f":{pg_proxy.port}/"),
                             loop_backoff_max_s=0.5, relay_backoff_max_s=0.5, **overrides)

    return make


async def _true(value) -> bool:
    return value


def loop_status(client, name: str) -> dict:
    return client.app[keys.LOOPS].status()[name]


async def cut_and_restore(client, proxy: TcpProxy, name: str, *, during=None) -> None:
    """Cut the database until loop `name` has failed a few times, check /readyz, run `during`
    (work arriving meanwhile), restore, and wait for the loop to say it recovered."""
    await eventually(lambda: _true(loop_status(client, name)["state"] == "running"), timeout=30)
    await proxy.stop()
    await eventually(lambda: _true(client.app[keys.LOOPS].status()[name]["failures"] >= 3), timeout=30)
    ready = await client.get("/readyz")
    body = await ready.json()
    assert ready.status == 503
    assert body["loops"][name]["state"] == "failing" and body["loops"][name]["error"]
    if during is not None:
        await during()
    await proxy.start()
    await eventually(lambda: _true(loop_status(client, name)["state"] == "running"), timeout=30)
    await eventually(lambda: _ready(client), timeout=30)


async def _ready(client) -> bool:
    return (await client.get("/readyz")).status == 200


async def test_the_dispatcher_resumes_after_a_database_outage(aiohttp_client, hub_settings, pg_proxy, direct,
                                                              caplog):
    caplog.set_level(logging.INFO, "omnihub.loops")
    client = await aiohttp_client(create_app(hub_settings()))
    message_id = uuid.uuid4()

    async def queued_by_another_hub() -> None:
        now = datetime.now(UTC)
        async with direct.begin() as conn:
            await conn.execute(insert(messages).values(
                id=message_id, channel="sms", adapter="gone", to_type="phone", to_value="+821055550000",
                purpose="transactional", request=json.dumps({"text": "hi"}), created_at=now, updated_at=now))

    await cut_and_restore(client, pg_proxy, "outbound-dispatcher", during=queued_by_another_hub)

    async def settled():
        async with direct.connect() as conn:
            return (await conn.execute(select(messages.c.state, messages.c.error_code)
                                       .where(messages.c.id == message_id))).one()

    await eventually(lambda: _true_row(settled, ("failed", "adapter_not_running")))
    assert loop_lines(caplog.records, "outbound-dispatcher") == [("WARNING", "failing"), ("INFO", "recovered")]


async def _true_row(read, expected) -> bool:
    return tuple(await read()) == expected


async def test_scheduled_sends_resume_after_a_database_outage(aiohttp_client, hub_settings, pg_proxy, direct,
                                                              caplog):
    caplog.set_level(logging.INFO, "omnihub.loops")
    client = await aiohttp_client(create_app(hub_settings()))
    action_id = uuid.uuid4()

    async def asked_for_meanwhile() -> None:
        now = datetime.now(UTC)
        payload = {"message_id": "m-outage", "channel": "sms", "body": "hi",
                   "to": {"identifier": {"type": "phone", "value": "+821055550001"}}}
        async with direct.begin() as conn:
            await conn.execute(insert(scheduled_actions).values(
                id=action_id, kind="message.send", payload=json.dumps(payload), due_at=now, created_at=now))

    await cut_and_restore(client, pg_proxy, "scheduled-sends", during=asked_for_meanwhile)

    async def outcome():
        async with direct.connect() as conn:
            state, text = (await conn.execute(select(scheduled_actions.c.state, scheduled_actions.c.outcome)
                                              .where(scheduled_actions.c.id == action_id))).one()
        return state, json.loads(text)["error"] if text else None

    await eventually(lambda: _true_row(outcome, ("failed", "no_adapter")))  # no sms adapter runs here
    assert loop_lines(caplog.records, "scheduled-sends") == [("WARNING", "failing"), ("INFO", "recovered")]


async def test_the_rules_scheduler_resumes_after_a_database_outage(aiohttp_client, hub_settings, pg_proxy, direct,
                                                                  caplog):
    caplog.set_level(logging.INFO, "omnihub.loops")
    client = await aiohttp_client(create_app(hub_settings()))
    timer_id = uuid.uuid4()

    async def due_meanwhile() -> None:
        now = datetime.now(UTC)
        async with direct.begin() as conn:
            await conn.execute(insert(timers).values(
                id=timer_id, rule="gone", name="t", key=f"k-{timer_id}", due_at=now, ruleset_version="v0",
                created_at=now))

    await cut_and_restore(client, pg_proxy, "rules-scheduler", during=due_meanwhile)

    async def ended():
        async with direct.connect() as conn:
            return (await conn.execute(select(timers.c.state, timers.c.reason).where(timers.c.id == timer_id))).one()

    await eventually(lambda: _true_row(ended, ("cancelled", "rule removed")))
    assert loop_lines(caplog.records, "rules-scheduler") == [("WARNING", "failing"), ("INFO", "recovered")]


async def test_the_router_rebuilds_and_routes_after_a_database_outage(aiohttp_client, hub_settings, pg_proxy,
                                                                      direct, caplog):
    caplog.set_level(logging.INFO, "omnihub.loops")
    client = await aiohttp_client(create_app(hub_settings(routing=routing_config())))
    client.app[keys.PIPELINE].steps.insert(0, route_from_metadata)
    await cut_and_restore(client, pg_proxy, "router")
    assert (await (await client.get("/readyz")).json())["routing"] == {"state": "active"}

    resp = await client.post("/v1/interactions", json=sms("010-7000-0001", metadata={"queue": "support"}))
    assert resp.status == 201, await resp.text()
    interaction_id = uuid.UUID((await resp.json())["id"])

    async def task_state():
        async with direct.connect() as conn:
            return (await conn.execute(select(tasks.c.state).where(tasks.c.interaction_id == interaction_id))).all()

    await eventually(lambda: _true_row(task_state, (("waiting",),)))  # routed; no agent is available
    assert loop_lines(caplog.records, "router") == [("WARNING", "failing"), ("INFO", "recovered")]


@pytest.mark.rabbitmq
async def test_a_command_taken_during_a_database_outage_is_applied_after_it_not_dead_lettered(
        aiohttp_client, hub_settings, pg_proxy, amqp_url, run_prefix, caplog):
    caplog.set_level(logging.INFO, "omnihub.loops")
    base = f"{run_prefix}.cmd.{uuid.uuid4().hex[:6]}"
    names = {"events_exchange": f"{base}.events",
             "backoffice": {"commands_exchange": f"{base}.commands", "commands_queue": f"{base}.commands",
                            "dead_exchange": f"{base}.dead", "dead_queue": f"{base}.dead", "command_attempts": 2}}
    client = await aiohttp_client(create_app(hub_settings(amqp_url=amqp_url, **names)))
    consumer = client.app[keys.COMMANDS]
    try:
        command = ("profile.upsert", {"external_id": "erp:OUT-1", "fields": {"display_name": "Kim Minji"}}, "m-out-1")
        # The consumer waits for deliveries, idle: the outage shows when a command arrives.
        await eventually(lambda: _true(loop_status(client, "commands")["state"] == "running"), timeout=30)
        await pg_proxy.stop()
        await publish(amqp_url, names, command)
        await eventually(lambda: _true(loop_status(client, "commands")["failures"] >= 3), timeout=30)
        assert consumer.dead_lettered == 0
        await pg_proxy.start()

        async def applied():
            resp = await client.get("/v1/profiles", params={"identifier": "external:erp:OUT-1"})
            return resp.status == 200 and (await resp.json())["display_name"] == "Kim Minji"

        await eventually(applied, timeout=30)
        assert consumer.dead_lettered == 0 and consumer.applied == 1
        assert loop_status(client, "commands")["state"] == "running"
        assert loop_lines(caplog.records, "commands") == [("WARNING", "failing"), ("INFO", "recovered")]
    finally:
        await client.close()
        await asyncio.to_thread(_delete, amqp_url, names)
