"""Hubs on one PostgreSQL database telling each other (hub.channels.peers) and the routing
operations asked of a hub that is not routing (hub.channels.router_link), in process: the
refusals a standby passes on, its 503 when nobody routes, NOTIFY's size limit, and the listener
coming back after its connection is killed. Real hub processes: tests/faults/test_cross_node.py."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import text

from hub import keys
from hub.app import create_app
from hub.channels import router_link
from hub.channels.peers import (
    APPLICATION_NAME,
    MAX_MESSAGE_BYTES,
    MAX_PAYLOAD_BYTES,
    LocalPeers,
    PayloadTooLarge,
    PgPeers,
    _Parts,
    encode,
)
from hub.settings import RoutingSettings
from tests.hub.conftest import eventually
from tests.hub.payloads import sms

ROUTING = {"queues": [{"name": "support", "sla_s": 30}], "default_queue": "support", "poll_interval_s": 0.05,
           "agents": [{"id": "alice"}, {"id": "bob"}], "router": {"offline_grace_s": 0.3}}


@pytest.fixture
def pg_only(database_url):
    if database_url.startswith("sqlite"):
        pytest.skip("peers exist on PostgreSQL only; a SQLite file has one hub")
    return database_url


async def _routing_and_standby(aiohttp_client, make_settings):
    first = await aiohttp_client(create_app(make_settings(routing=ROUTING)))
    await first.app[keys.ROUTER].active.wait()
    second = await aiohttp_client(create_app(make_settings(routing=ROUTING)))
    await eventually(lambda: _standing_by(second))
    await second.app[keys.PEERS].wait_listening(10)
    await first.app[keys.PEERS].wait_listening(10)
    return first, second


async def _standing_by(client) -> bool:
    return (await (await client.get("/readyz")).json())["routing"]["state"] == "standby"


async def test_a_standby_runs_operations_on_the_routing_hub_and_passes_on_its_refusals(pg_only, aiohttp_client,
                                                                                       make_settings):
    first, second = await _routing_and_standby(aiohttp_client, make_settings)
    resp = await second.post("/v1/agents/alice/presence", json={"presence": "available"})
    assert resp.status == 200, await resp.text()
    assert first.app[keys.ROUTER].router.agent("alice").presence.value == "available"

    resp = await second.post("/v1/agents/nobody/presence", json={"presence": "available"})
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"
    resp = await second.post(f"/v1/tasks/{uuid.uuid4()}/accept", json={"agent_id": "alice"})
    assert resp.status == 404 and (await resp.json())["error"] == "task_not_found"

    created = await (await second.post("/v1/interactions", json=sms("010-7100-0001"))).json()

    async def offered():
        tasks = first.app[keys.ROUTER].router.agent_tasks("alice")
        return tasks[0].id if tasks and tasks[0].interaction_id == created["id"] else None

    task_id = await eventually(offered)
    resp = await second.post(f"/v1/tasks/{task_id}/accept", json={"agent_id": "bob"})  # offered to alice
    assert resp.status == 409 and (await resp.json())["error"] == "invalid_transition"
    resp = await second.post(f"/v1/tasks/{task_id}/accept", json={"agent_id": "alice"})
    assert resp.status == 200 and (await resp.json())["state"] == "assigned"


async def test_with_no_hub_routing_a_standby_answers_503(pg_only, aiohttp_client, make_settings, monkeypatch):
    monkeypatch.setattr(router_link, "ANSWER_TIMEOUT_S", 0.5)
    hub = await aiohttp_client(create_app(make_settings(routing=ROUTING)))
    # The lock held by a session that is no hub: this one stands by, and nobody answers it.
    async with hub.app[keys.ENGINE].connect() as holder:
        await hub.app[keys.ROUTER].stop()
        await holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": RoutingSettings().lock_key})
        await hub.app[keys.ROUTER].start()
        await eventually(lambda: _standing_by(hub))
        resp = await hub.post("/v1/agents/alice/presence", json={"presence": "available"})
        assert resp.status == 503 and (await resp.json())["error"] == "routing_unavailable"
        await holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": RoutingSettings().lock_key})


async def test_a_message_over_the_limit_is_refused_before_it_is_sent():
    peers = LocalPeers()
    await peers.publish("x", {"text": "가" * 10_000})  # 30,000 bytes: in parts
    with pytest.raises(PayloadTooLarge):
        await peers.publish("x", {"text": "가" * (MAX_MESSAGE_BYTES // 3)})  # 3 bytes each in UTF-8


async def test_a_listener_whose_connection_is_killed_listens_again(pg_only, engine):
    sender, listener = PgPeers(engine), PgPeers(engine)
    got: list[dict] = []

    async def record(body):
        got.append(body)

    listener.subscribe("ping", record)
    await sender.start()
    await listener.start()
    try:
        assert await listener.wait_listening(10)
        async with engine.connect() as conn:
            killed = (await conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = :name"),
                {"name": APPLICATION_NAME})).scalars().all()
            await conn.commit()
        assert killed and all(killed)

        async def heard():
            await sender.publish("ping", {"n": 1})
            await asyncio.sleep(0.1)
            return got

        assert (await eventually(heard, timeout=30))[0] == {"n": 1}
        assert listener.status() == {"transport": "postgresql", "state": "up"}
    finally:
        await listener.stop()
        await sender.stop()


async def _presence(client, agent_id: str) -> str:
    return client.app[keys.ROUTER].router.agent(agent_id).presence.value


async def _settled(service) -> bool:
    return not service._offline_timers and not service._background


async def test_the_last_console_closing_on_a_standby_sets_the_agent_offline(pg_only, aiohttp_client, make_settings):
    first, second = await _routing_and_standby(aiohttp_client, make_settings)
    ws = await second.ws_connect("/v1/agents/ws?agent_id=alice")
    assert (await ws.receive_json(timeout=10))["type"] == "hello"
    assert (await second.post("/v1/agents/alice/presence", json={"presence": "available"})).status == 200
    await ws.close()
    await eventually(lambda: _is(first, "alice", "offline"), timeout=20)


async def test_a_console_that_moved_to_another_hub_keeps_the_agent_available(pg_only, aiohttp_client, make_settings):
    first, second = await _routing_and_standby(aiohttp_client, make_settings)
    on_first = await first.ws_connect("/v1/agents/ws?agent_id=alice")
    assert (await on_first.receive_json(timeout=10))["type"] == "hello"
    assert (await first.post("/v1/agents/alice/presence", json={"presence": "available"})).status == 200
    # The browser reconnects through the balancer and lands on the other hub.
    on_second = await second.ws_connect("/v1/agents/ws?agent_id=alice")
    assert (await on_second.receive_json(timeout=10))["type"] == "hello"
    await on_first.close()
    service = first.app[keys.ROUTER]
    await eventually(lambda: _settled_after_grace(service), timeout=20)
    assert await _presence(first, "alice") == "available"
    await on_second.close()
    await eventually(lambda: _is(first, "alice", "offline"), timeout=20)


async def _is(client, agent_id: str, presence: str) -> bool:
    return await _presence(client, agent_id) == presence


async def _settled_after_grace(service) -> bool:
    await asyncio.sleep(0.4)  # past the grace: the timer has fired and its check is running or done
    return await _settled(service)


async def test_messages_over_the_notify_limit_cross_in_parts(pg_only, aiohttp_client, make_settings):
    """A 12,000-byte wrap-up note: the operation asked of the routing hub, its answer, and the frame
    for the console on the other hub are each over NOTIFY's 8000 bytes."""
    _, second = await _routing_and_standby(aiohttp_client, make_settings)
    ws = await second.ws_connect("/v1/agents/ws?agent_id=alice")
    assert (await ws.receive_json(timeout=10))["type"] == "hello"
    assert (await second.post("/v1/agents/alice/presence", json={"presence": "available"})).status == 200
    await second.post("/v1/interactions", json=sms("010-7200-0001"))

    async def next_frame(**match):
        while True:
            frame = await ws.receive_json(timeout=20)
            if all(frame.get(k) == v for k, v in match.items()):
                return frame

    offer = await next_frame(type="offer")
    assert (await second.post(f"/v1/tasks/{offer['task_id']}/accept", json={"agent_id": "alice"})).status == 200
    note = "메모" * 2000  # 12,000 bytes in UTF-8
    resp = await second.post(f"/v1/tasks/{offer['task_id']}/wrapup", json={"disposition": "ok", "note": note})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["note"] == note
    frame = await next_frame(type="task", event="wrap_up")
    assert frame["task"]["id"] == offer["task_id"] and frame["task"]["note"] == note
    await ws.close()


def test_parts_are_joined_whatever_their_order_and_a_whole_message_is_one_payload():
    body = {"text": "가나다" * 3000, "n": 1}
    parts = encode("node-a", "x", body)
    assert len(parts) > 1 and all(len(p.encode()) <= MAX_PAYLOAD_BYTES for p in parts)
    joined = _Parts()
    got = [joined.add(json.loads(p)) for p in reversed(parts)]
    assert got[:-1] == [None] * (len(parts) - 1)
    assert json.loads(got[-1]) == {"n": "node-a", "k": "x", "b": body}
    assert encode("node-a", "x", {"text": "short"}) == ['{"n":"node-a","k":"x","b":{"text":"short"}}']
