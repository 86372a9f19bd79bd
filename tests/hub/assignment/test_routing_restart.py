"""A hub restarted on the same database routes on where the last one stopped (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.hub.assignment.test_routing_flow import presence, queue_stats, receive, routed, start, task_row
from tests.hub.conftest import eventually


async def test_restart_keeps_the_waiting_order_and_the_assigned_task_keeps_its_capacity(aiohttp_client, make_settings):
    first = await start(aiohttp_client, make_settings)
    a = await routed(first, phone="010-5000-0001")
    b = await routed(first, phone="010-5000-0002")
    urgent = await routed(first, phone="010-5000-0003", priority="5")
    await eventually(lambda: _all_waiting(first, a, b, urgent))
    async with first.ws_connect("/v1/agents/ws?agent_id=alice") as ws:
        await presence(first, "alice")
        # The highest priority first, whatever the arrival order.
        assert (await receive(ws, "offer"))["task_id"] == urgent
        await ws.send_json({"op": "accept", "task_id": urgent})
        await receive(ws, "ack")
    await first.close()

    second = await start(aiohttp_client, make_settings)
    agents = {x["id"]: x for x in (await (await second.get("/v1/agents")).json())["items"]}
    assert agents["alice"]["presence"] == "available"
    assert agents["alice"]["tasks"] == {urgent: "assigned"}
    assert agents["alice"]["used"] == 20
    stats = await queue_stats(second, "support")
    # alice's one SMS slot is still taken: nothing is offered to her.
    assert (stats["waiting"], stats["offered"]) == (2, 0)
    async with second.ws_connect("/v1/agents/ws?agent_id=alice") as ws:
        resp = await second.post(f"/v1/tasks/{urgent}/complete", json={"disposition": "done"})
        assert resp.status == 200
        # Equal priority: the older one next.
        assert (await receive(ws, "offer"))["task_id"] == a
    assert (await task_row(second, b)).state == "waiting"
    assert (await task_row(second, urgent)).state == "completed"


async def test_a_pending_offer_is_void_after_a_restart_and_offered_again(aiohttp_client, make_settings):
    first = await start(aiohttp_client, make_settings)
    await presence(first, "alice")
    task = await routed(first)
    async with first.ws_connect("/v1/agents/ws?agent_id=alice") as ws:
        assert (await receive(ws, "offer"))["task_id"] == task
    await first.close()

    second = await start(aiohttp_client, make_settings)
    async with second.ws_connect("/v1/agents/ws?agent_id=alice") as ws:
        # The console reconnects and is shown the offer again (a new one, with a fresh expiry).
        offer = await receive(ws, "offer")
        assert offer["task_id"] == task
        await ws.send_json({"op": "accept", "task_id": task})
        assert (await receive(ws, "ack"))["task"]["state"] == "assigned"
    assert (await task_row(second, task)).agent_id == "alice"


async def _all_waiting(client, *task_ids: str) -> bool:
    return all([(await task_row(client, t)).state == "waiting" for t in task_ids])


async def test_queue_statistics_are_rebuilt_from_the_tasks_table(aiohttp_client, make_settings):
    first = await start(aiohttp_client, make_settings)
    await presence(first, "alice")
    answered = await routed(first, phone="010-5100-0001")
    await eventually(lambda: _in_state(first, answered, "offered"))
    assert (await first.post(f"/v1/tasks/{answered}/accept", json={"agent_id": "alice"})).status == 200
    left = await routed(first, phone="010-5100-0002")  # alice takes one SMS at a time: it waits
    await eventually(lambda: _in_state(first, left, "waiting"))
    assert (await first.post(f"/v1/tasks/{left}/abandon")).status == 200
    before = await queue_stats(first, "support")
    await first.close()

    second = await start(aiohttp_client, make_settings)
    after = await queue_stats(second, "support")
    fields = ("answered", "answered_within_sla", "abandoned", "service_level", "abandon_rate")
    assert {k: after[k] for k in fields} == {k: before[k] for k in fields}
    assert (after["answered"], after["abandoned"], after["abandon_rate"]) == (1, 1, 0.5)
    assert after["asa_s"] == pytest.approx(before["asa_s"], abs=0.01)


async def _in_state(client, task_id: str, state: str) -> bool:
    return (await task_row(client, task_id)).state == state
