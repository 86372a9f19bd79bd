"""The router in the hub: routed interactions become durable tasks, offers reach agents over the
websocket, every transition lands in the tasks table and the outbox (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import func, select, text

from hub import keys
from hub.app import create_app
from hub.storage.models import outbox
from hub.storage.routing_models import task_events, tasks
from rules.actions import Route
from tests.hub.conftest import eventually
from tests.hub.payloads import sms

QUEUES = [{"name": "support", "sla_s": 30}, {"name": "sales", "sla_s": 30}]
AGENTS = [{"id": "alice", "display_name": "Alice", "capacity": {"max_per_channel": {"sms": 1}}},
          {"id": "bob", "display_name": "Bob"}]


def routing_config(**router) -> dict:
    return {"queues": QUEUES, "agents": AGENTS, "poll_interval_s": 0.05, "router": router}


def route_from_metadata(ctx) -> None:
    """Stands in for the rules step: `metadata.queue` routes, `metadata.owner_first` asks for the owner."""
    meta = ctx.interaction.metadata
    if "queue" in meta:
        priority = int(meta["priority"]) if "priority" in meta else None
        ctx.actions.append(Route(str(meta["queue"]), priority=priority, owner_first=bool(meta.get("owner_first"))))


async def start(aiohttp_client, make_settings, **router):
    client = await aiohttp_client(create_app(make_settings(routing=routing_config(**router))))
    client.app[keys.PIPELINE].steps.insert(0, route_from_metadata)
    await client.app[keys.ROUTER].active.wait()
    return client


async def routed(client, queue="support", phone="010-1234-5678", text_="hello", **meta) -> str:
    """Ingest an SMS routed to `queue`; returns the task id."""
    resp = await client.post("/v1/interactions", json=sms(phone, text=text_, metadata={"queue": queue, **meta}))
    assert resp.status == 201, await resp.text()
    iid = uuid.UUID((await resp.json())["id"])
    return str(await scalar(client, select(tasks.c.id).where(tasks.c.interaction_id == iid)))


async def scalar(client, stmt):
    async with client.app[keys.ENGINE].connect() as conn:
        return (await conn.execute(stmt)).scalar_one()


async def task_row(client, task_id: str):
    async with client.app[keys.ENGINE].connect() as conn:
        return (await conn.execute(select(tasks).where(tasks.c.id == uuid.UUID(task_id)))).one()


async def task_count(client) -> int:
    return await scalar(client, select(func.count()).select_from(tasks))


async def events_of(client, event_type: str) -> list[dict]:
    async with client.app[keys.ENGINE].connect() as conn:
        rows = await conn.execute(select(outbox.c.body, outbox.c.routing_key).where(outbox.c.type == event_type)
                                  .order_by(outbox.c.seq))
        return [{**json.loads(body), "routing_key": key} for body, key in rows]


async def presence(client, agent: str, value: str = "available") -> None:
    resp = await client.post(f"/v1/agents/{agent}/presence", json={"presence": value})
    assert resp.status == 200, await resp.text()


async def receive(ws, type_: str, timeout: float = 5.0) -> dict:
    """The next frame of a type, skipping others (task updates, presence)."""
    while True:
        frame = await ws.receive_json(timeout=timeout)
        if frame["type"] == type_:
            return frame


async def test_a_routed_interaction_commits_its_task_and_task_created_with_it(aiohttp_client, make_settings):
    client = await start(aiohttp_client, make_settings)
    task_id = await routed(client, "sales", priority="7")
    row = await task_row(client, task_id)
    assert row.priority == 7
    created = await events_of(client, "task.created")
    assert [e["data"]["task_id"] for e in created] == [task_id]
    assert created[0]["data"]["queue"] == "sales"
    assert created[0]["routing_key"] == "task.created.sms"
    await eventually(lambda: _state_is(client, task_id, "waiting"))

    # Same transaction: a failure after the routing step leaves neither the task nor its event.
    def poison(ctx) -> None:
        if ctx.interaction.content and ctx.interaction.content.text == "poison":
            ctx.writes.append(lambda conn: conn.execute(text("INSERT INTO no_such_table VALUES (1)")))

    client.app[keys.PIPELINE].steps.append(poison)
    resp = await client.post("/v1/interactions", json=sms("010-2222-0000", text="poison", metadata={"queue": "support"}))
    assert resp.status == 500
    assert await task_count(client) == 1
    assert len(await events_of(client, "task.created")) == 1

    # No route action and no default queue: no task.
    resp = await client.post("/v1/interactions", json=sms("010-3333-0000"))
    assert resp.status == 201
    assert await task_count(client) == 1


async def _state_is(client, task_id: str, state: str) -> bool:
    return (await task_row(client, task_id)).state == state


@pytest.mark.clock
async def test_agent_gets_the_offer_over_the_websocket_accepts_and_the_task_is_assigned(aiohttp_client, make_settings):
    client = await start(aiohttp_client, make_settings)
    await presence(client, "alice")
    async with client.ws_connect("/v1/agents/ws?agent_id=alice") as ws:
        hello = await receive(ws, "hello")
        assert hello["agent"]["presence"] == "available"
        task_id = await routed(client, text_="where is my parcel")
        offer = await receive(ws, "offer")
        assert offer["task_id"] == task_id
        assert (offer["channel"], offer["queue"]) == ("sms", "support")
        assert offer["interaction"]["text"] == "where is my parcel"
        assert offer["interaction"]["sender"] == "Kim Minji"
        assert offer["profile_id"] and offer["expires_at"]
        assert offer["interaction"]["customer"] == "Kim Minji"  # the profile's name, for contacts without one
        timeout = client.app[keys.SETTINGS].routing.router.offer_timeout_s
        assert 0 < offer["expires_in_s"] <= timeout
        await ws.send_json({"op": "accept", "task_id": task_id})
        ack = await receive(ws, "ack")
        assert ack["task"]["state"] == "assigned" and ack["task"]["agent_id"] == "alice"
    row = await task_row(client, task_id)
    assert (row.state, row.agent_id) == ("assigned", "alice")
    assigned = await events_of(client, "task.assigned")
    assert [e["data"]["id"] for e in assigned] == [task_id]
    assert assigned[0]["data"]["agent_id"] == "alice"
    kinds = [r[0] for r in (await _log(client, task_id))]
    assert kinds == ["created", "offered", "assigned"]
    # Accepting again is refused and names the state.
    resp = await client.post(f"/v1/tasks/{task_id}/accept", json={"agent_id": "alice"})
    assert resp.status == 409
    assert (await resp.json())["state"] == "assigned"


async def _log(client, task_id: str):
    async with client.app[keys.ENGINE].connect() as conn:
        return (await conn.execute(select(task_events.c.kind).where(task_events.c.task_id == uuid.UUID(task_id))
                                   .order_by(task_events.c.seq))).all()


@pytest.mark.clock
async def test_an_expired_offer_returns_the_task_and_the_agent_who_missed_it_goes_away(aiohttp_client, make_settings):
    client = await start(aiohttp_client, make_settings, offer_timeout_s=0.3, max_missed_offers=1)
    await presence(client, "alice")
    async with client.ws_connect("/v1/agents/ws?agent_id=alice") as ws:
        task_id = await routed(client)
        assert (await receive(ws, "offer"))["task_id"] == task_id
        expired = await receive(ws, "task")
        assert expired["event"] == "offer_expired" and expired["task"]["state"] == "waiting"
        assert (await receive(ws, "presence"))["presence"] == "away"
        await ws.send_json({"op": "accept", "task_id": task_id})
        refused = await receive(ws, "error")
        assert refused["error"] == "invalid_transition" and refused["state"] == "waiting"
    row = await task_row(client, task_id)
    assert (row.state, row.agent_id) == ("waiting", None)
    agents = {a["id"]: a for a in (await (await client.get("/v1/agents")).json())["items"]}
    assert agents["alice"]["presence"] == "away"
    # Bob logs in and gets the returned task.
    async with client.ws_connect("/v1/agents/ws?agent_id=bob") as ws:
        await presence(client, "bob")
        assert (await receive(ws, "offer"))["task_id"] == task_id


async def test_completing_frees_capacity_and_the_next_waiting_task_is_offered(aiohttp_client, make_settings):
    client = await start(aiohttp_client, make_settings)
    first = await routed(client, phone="010-1000-0001")
    second = await routed(client, phone="010-1000-0002")
    await eventually(lambda: _state_is(client, second, "waiting"))
    async with client.ws_connect("/v1/agents/ws?agent_id=alice") as ws:
        await presence(client, "alice")
        assert (await receive(ws, "offer"))["task_id"] == first
        resp = await client.post(f"/v1/tasks/{first}/accept", json={"agent_id": "alice"})
        assert resp.status == 200
        stats = await queue_stats(client, "support")
        # alice takes one SMS at a time: the second waits while she works.
        assert (stats["waiting"], stats["offered"], stats["answered"]) == (1, 0, 1)
        assert stats["service_level"] == 1.0 and stats["abandon_rate"] == 0.0
        assert stats["longest_wait_s"] > 0
        resp = await client.post(f"/v1/tasks/{first}/complete", json={"disposition": "resolved", "note": "ok"})
        assert resp.status == 200 and (await resp.json())["state"] == "completed"
        assert (await receive(ws, "offer"))["task_id"] == second
    completed = await events_of(client, "task.completed")
    assert [e["data"]["id"] for e in completed] == [first]
    assert completed[0]["data"]["disposition"] == "resolved"
    assert (await task_row(client, first)).state == "completed"
    # A finished task is refused with its state; an unknown one is 404.
    resp = await client.post(f"/v1/tasks/{first}/complete", json={})
    assert resp.status == 409 and (await resp.json())["state"] == "completed"
    resp = await client.post("/v1/tasks/0190a000-0000-7000-8000-000000000000/accept", json={"agent_id": "alice"})
    assert resp.status == 404
    resp = await client.post(f"/v1/tasks/{second}/complete", json={})
    assert resp.status == 409 and (await resp.json())["state"] == "offered"


async def queue_stats(client, name: str) -> dict:
    body = await (await client.get("/v1/queues")).json()
    return next(q["stats"] for q in body["items"] if q["name"] == name)


async def test_owner_first_offers_the_relationship_owner_and_vip_tier_raises_priority(aiohttp_client, make_settings):
    client = await start(aiohttp_client, make_settings)
    phone = "010-4444-0000"
    resp = await client.post("/v1/interactions", json=sms(phone))
    profile_id = (await resp.json())["profile_id"]
    async with client.app[keys.ENGINE].begin() as conn:
        await conn.execute(text("UPDATE profiles SET attributes = :a"), {"a": json.dumps({"owner": "bob", "tier": "vip"})})
    await presence(client, "alice")  # idle longest: she would get anything not sticky
    await presence(client, "bob")
    async with client.ws_connect("/v1/agents/ws?agent_id=bob") as ws:
        task_id = await routed(client, phone=phone, owner_first="1")
        offer = await receive(ws, "offer")
        assert offer["task_id"] == task_id and offer["profile_id"] == profile_id
    row = await task_row(client, task_id)
    assert (row.preferred_agent, row.priority) == ("bob", 10)
    # Without owner_first the same customer goes to whoever is idle longest.
    other = await routed(client, phone=phone)
    await eventually(lambda: _state_is(client, other, "offered"))
    assert (await task_row(client, other)).agent_id == "alice"


async def test_presence_is_validated_and_unknown_agents_are_404(aiohttp_client, make_settings):
    client = await start(aiohttp_client, make_settings)
    resp = await client.post("/v1/agents/alice/presence", json={"presence": "bogus"})
    assert resp.status == 422
    resp = await client.post("/v1/agents/nobody/presence", json={"presence": "available"})
    assert resp.status == 404
    async with client.ws_connect("/v1/agents/ws?agent_id=nobody") as ws:
        frame = await ws.receive_json(timeout=5)
        assert frame["type"] == "error" and frame["status"] == 404


async def test_abandon_and_cancel_end_a_task_and_free_its_agent(aiohttp_client, make_settings):
    client = await start(aiohttp_client, make_settings)
    gone = await routed(client, phone="010-6000-0001")
    await eventually(lambda: _state_is(client, gone, "waiting"))
    # The caller hung up while waiting.
    resp = await client.post(f"/v1/tasks/{gone}/abandon", json={})
    assert resp.status == 200 and (await resp.json())["state"] == "abandoned"
    assert (await task_row(client, gone)).state == "abandoned"
    assert [e["data"]["id"] for e in await events_of(client, "task.abandoned")] == [gone]
    resp = await client.post(f"/v1/tasks/{gone}/abandon")
    assert resp.status == 409 and (await resp.json())["state"] == "abandoned"

    await presence(client, "alice")
    talking = await routed(client, phone="010-6000-0002")
    await eventually(lambda: _state_is(client, talking, "offered"))
    assert (await client.post(f"/v1/tasks/{talking}/accept", json={"agent_id": "alice"})).status == 200
    # Once answered, the customer leaving ends the conversation (wrap-up), not the wait.
    resp = await client.post(f"/v1/tasks/{talking}/abandon", json={})
    assert resp.status == 409 and (await resp.json())["state"] == "assigned"
    resp = await client.post(f"/v1/tasks/{talking}/cancel", json={"reason": "duplicate"})
    assert resp.status == 200 and (await resp.json())["state"] == "cancelled"
    agents = {a["id"]: a for a in (await (await client.get("/v1/agents")).json())["items"]}
    assert (agents["alice"]["used"], agents["alice"]["tasks"]) == (0, {})
    cancelled = await events_of(client, "task.cancelled")
    assert [e["data"]["event"]["details"]["reason"] for e in cancelled] == ["duplicate"]
    stats = await queue_stats(client, "support")
    assert (stats["answered"], stats["abandoned"], stats["abandon_rate"]) == (1, 1, 0.5)
    resp = await client.post("/v1/tasks/0190a000-0000-7000-8000-000000000000/cancel", json={})
    assert resp.status == 404
    resp = await client.post(f"/v1/tasks/{talking}/cancel", json={"bogus": 1})
    assert resp.status == 422


async def test_task_listing_is_in_line_order_and_filters(aiohttp_client, make_settings):
    client = await start(aiohttp_client, make_settings)
    low = await routed(client, phone="010-6100-0001")
    high = await routed(client, phone="010-6100-0002", priority="3")
    # The router picks committed tasks up asynchronously: wait until it has both in line.
    await eventually(lambda: _state_is(client, low, "waiting"))
    await eventually(lambda: _state_is(client, high, "waiting"))
    body = await (await client.get("/v1/tasks?queue=support&state=waiting")).json()
    assert [t["id"] for t in body["items"]] == [high, low]
    assert (await (await client.get("/v1/tasks?queue=sales")).json())["items"] == []
    assert (await client.get("/v1/tasks?state=bogus")).status == 422
    # An agent's own tasks (what a console reloads): those offered to it or held by it.
    await presence(client, "bob")
    await eventually(lambda: _state_is(client, low, "offered"))
    assert (await client.post(f"/v1/tasks/{high}/accept", json={"agent_id": "bob"})).status == 200
    held = (await (await client.get("/v1/tasks?agent_id=bob")).json())["items"]
    assert {t["id"]: t["state"] for t in held} == {high: "assigned", low: "offered"}
    assert (await (await client.get("/v1/tasks?agent_id=alice")).json())["items"] == []


async def test_agent_goes_offline_when_its_last_console_closes(aiohttp_client, make_settings):
    client = await start(aiohttp_client, make_settings, offline_grace_s=0.3)
    await presence(client, "alice")

    async def alice() -> str:
        agents = (await (await client.get("/v1/agents")).json())["items"]
        return next(a["presence"] for a in agents if a["id"] == "alice")

    # A reload: the console reconnects within the grace, and alice stays available.
    async with client.ws_connect("/v1/agents/ws?agent_id=alice") as ws:
        await receive(ws, "hello")
    async with client.ws_connect("/v1/agents/ws?agent_id=alice") as first:
        await receive(first, "hello")
        async with client.ws_connect("/v1/agents/ws?agent_id=alice") as second:
            await receive(second, "hello")
            task_id = await routed(client)
            assert (await receive(second, "offer"))["task_id"] == task_id
        await asyncio.sleep(0.6)  # one of two consoles closed: still available
        assert await alice() == "available"
    # The last console closed and none came back: offline, and her pending offer returns to the line.
    await eventually(lambda: _is(alice, "offline"), timeout=5)
    await eventually(lambda: _state_is(client, task_id, "waiting"), timeout=5)
    reasons = [e["data"]["details"].get("reason") for e in await events_of(client, "agent.presence_changed")]
    assert reasons[-1] == "disconnected"


async def _is(probe, value) -> bool:
    return await probe() == value


async def test_readyz_tells_whether_this_hub_routes(aiohttp_client, make_settings):
    plain = await aiohttp_client(create_app(make_settings()))
    assert (await (await plain.get("/readyz")).json())["routing"] == {"state": "disabled"}
    client = await start(aiohttp_client, make_settings)
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["routing"] == {"state": "active"}


async def test_a_second_hub_on_postgresql_stands_by_until_the_routing_one_stops(aiohttp_client, make_settings,
                                                                                 database_url):
    if database_url.startswith("sqlite"):
        pytest.skip("the routing lock is PostgreSQL's; a SQLite file has one hub")
    first = await start(aiohttp_client, make_settings)
    second = await aiohttp_client(create_app(make_settings(routing=routing_config())))
    await asyncio.sleep(0.5)
    assert (await (await second.get("/readyz")).json())["routing"] == {"state": "standby"}
    await first.close()
    await asyncio.wait_for(second.app[keys.ROUTER].active.wait(), 10)
    assert (await (await second.get("/readyz")).json())["routing"] == {"state": "active"}


async def test_listings_show_only_what_is_durable(aiohttp_client, make_settings):
    # A long poll: nothing flushes the router's in-memory change below but the listing itself.
    config = {**routing_config(), "poll_interval_s": 30}
    client = await aiohttp_client(create_app(make_settings(routing=config)))
    client.app[keys.PIPELINE].steps.insert(0, route_from_metadata)
    await client.app[keys.ROUTER].active.wait()
    task_id = await routed(client, phone="010-6200-0001")
    await eventually(lambda: _state_is(client, task_id, "waiting"))
    # A change the router makes on its own (as a timer does): alice comes back and is offered the task.
    client.app[keys.ROUTER].router.set_presence("alice", "available")
    shown = {t["id"]: t["state"] for t in (await (await client.get("/v1/tasks")).json())["items"]}
    assert shown[task_id] == "offered"
    assert (await task_row(client, task_id)).state == "offered"
    assert [e["data"]["id"] for e in await events_of(client, "task.offered")] == [task_id]
    agents = {a["id"]: a for a in (await (await client.get("/v1/agents")).json())["items"]}
    assert agents["alice"]["presence"] == "available"


async def test_a_task_is_shown_live_and_after_it_is_finished(aiohttp_client, make_settings):
    client = await start(aiohttp_client, make_settings)
    task_id = await routed(client, phone="010-6300-0001")
    await eventually(lambda: _state_is(client, task_id, "waiting"))
    assert (await (await client.get(f"/v1/tasks/{task_id}")).json())["state"] == "waiting"
    resp = await client.post(f"/v1/tasks/{task_id}/cancel", json={"reason": "duplicate"})
    assert resp.status == 200, await resp.text()
    shown = await (await client.get(f"/v1/tasks/{task_id}")).json()
    assert (shown["id"], shown["state"], shown["queue"]) == (task_id, "cancelled", "support")
    assert (await client.get(f"/v1/tasks/{uuid.uuid4()}")).status == 404
    assert (await client.get("/v1/tasks/not-a-uuid")).status == 404


async def test_a_conversation_with_an_open_task_is_one_task_until_it_ends(aiohttp_client, make_settings):
    client = await start(aiohttp_client, make_settings)
    thread = {"conversation_key": "sms:+821063000002:+15005550006"}

    async def message(text_: str) -> str:
        resp = await client.post("/v1/interactions", json=sms("010-6300-0002", text=text_, metadata={"queue": "support"},
                                                               **thread))
        assert resp.status == 201, await resp.text()
        return (await resp.json())["id"]

    first = await message("hello")
    await message("are you there?")
    await message("my order is late")
    assert await task_count(client) == 1
    assert len(await events_of(client, "task.created")) == 1
    task_id = str(await scalar(client, select(tasks.c.id).where(tasks.c.interaction_id == uuid.UUID(first))))
    await eventually(lambda: _state_is(client, task_id, "waiting"))
    resp = await client.post(f"/v1/tasks/{task_id}/cancel", json={"reason": "answered elsewhere"})
    assert resp.status == 200, await resp.text()
    await message("one more thing")  # the task ended: a new one
    assert await task_count(client) == 2
    # Another conversation of the same customer is a task of its own.
    other = await client.post("/v1/interactions", json=sms("010-6300-0002", metadata={"queue": "support"},
                                                           conversation_key="email:thread-9"))
    assert other.status == 201
    assert await task_count(client) == 3
