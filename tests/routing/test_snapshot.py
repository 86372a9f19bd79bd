from __future__ import annotations

import json

import pytest

from routing import Queue, Router, RouterConfig, TaskEventKind, TaskState, VirtualClock
from routing.errors import RoutingError

from .helpers import task


def _fresh(clock: VirtualClock, snapshot: dict) -> Router:
    r = Router(clock, RouterConfig(offer_timeout_s=20, preference_timeout_s=30, wrapup_timeout_s=60))
    for q in snapshot["queues"]:
        r.add_queue(Queue.model_validate(q))
    return r


def test_snapshot_restore_round_trip(router: Router, clock: VirtualClock) -> None:
    router.add_queue(Queue(name="chat"))
    router.login("a", skills={"en": 2})
    router.login("b")
    call = router.submit(task(channel="voice"))
    router.accept(call.id, call.agent_id)
    chat = router.submit(task("chat", channel="chat"))
    router.accept(chat.id, chat.agent_id)
    router.wrapup(chat.id, disposition="ok")
    clock.advance(1)
    router.set_presence(chat.agent_id, "away")
    waiting = [router.submit(task(channel="email", priority=p)) for p in (0, 2, 0)]
    before = json.loads(json.dumps(router.snapshot()))  # plain data survives JSON

    restored = _fresh(clock, before)
    restored.restore(tasks=before["tasks"], agents=before["agents"])
    after = restored.snapshot()
    strip = lambda s: [{k: v for k, v in t.items() if k != "seq"} for t in s["tasks"]]  # noqa: E731
    assert strip(after) == strip(before)
    assert after["agents"] == before["agents"]
    # Held tasks consume capacity again; the waiting line keeps its order.
    assert restored.agent(call.agent_id).used == 100
    assert restored.agent(chat.agent_id).tasks == router.agent(chat.agent_id).tasks
    restored.drain_events()
    restored.set_presence(chat.agent_id, "available")
    order = [e.task_id for e in restored.drain_events() if getattr(e, "kind", None) is TaskEventKind.OFFERED]
    assert order == [waiting[1].id, waiting[0].id, waiting[2].id]


def test_restore_voids_pending_offers_and_reschedules_timers(router: Router, clock: VirtualClock) -> None:
    router.login("a")
    t = router.submit(task())
    assert t.state is TaskState.OFFERED
    snap = router.snapshot()
    snap["agents"][0]["presence"] = "offline"  # the agent's console went with the process
    restored = _fresh(clock, snap)
    restored.restore(snap["tasks"], snap["agents"])
    (back,) = restored.tasks()
    assert back.state is TaskState.WAITING and back.agent_id is None
    clock.advance(25)
    restored.tick()
    assert back.sla_breached  # the SLA timer came back from the stored enqueue time


def test_restore_needs_an_empty_router(router: Router) -> None:
    router.login("a")
    with pytest.raises(RoutingError):
        router.restore([], [])


def test_restore_refuses_bad_rows_without_changing_anything(router: Router, clock: VirtualClock) -> None:
    router.login("a")
    t = router.submit(task())
    router.accept(t.id, "a")
    snap = router.snapshot()
    restored = _fresh(clock, snap)
    with pytest.raises(RoutingError):
        restored.restore(snap["tasks"], [])  # the holding agent is missing
    assert restored.tasks() == [] and restored.agents() == []
    restored.restore(snap["tasks"], snap["agents"])
    assert restored.task(t.id).state is TaskState.ASSIGNED
