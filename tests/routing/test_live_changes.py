"""Changing a live task: Router.set_priority and Router.escalate (what rules on task triggers call)."""

from __future__ import annotations

import pytest

from routing import (
    InvalidTransition,
    Queue,
    Router,
    RouterConfig,
    RoutingError,
    TaskEventKind,
    TaskState,
    UnknownTask,
    VirtualClock,
)
from routing.invariants import check_invariants

from .helpers import task


def _events(router: Router, kind: TaskEventKind) -> list:
    return [e for e in router.drain_events() if getattr(e, "kind", None) is kind]


def test_set_priority_moves_a_waiting_task_ahead_and_keeps_its_enqueue_time(router: Router, clock) -> None:
    router.login("a")
    busy = router.submit(task())
    router.accept(busy.id, "a")
    older = router.submit(task())
    clock.advance(5)
    newer = router.submit(task())
    enqueued = newer.enqueued_at
    router.drain_events()

    router.set_priority(newer.id, 7, reason="vip")
    (ev,) = _events(router, TaskEventKind.REPRIORITIZED)
    assert (ev.task_id, ev.event_type, ev.details["previous"], ev.details["priority"]) == (
        newer.id, "task.reprioritized", 0, 7)
    assert (newer.priority, newer.enqueued_at, newer.state) == (7, enqueued, TaskState.WAITING)
    assert check_invariants(router) == []

    router.complete(busy.id)
    assert (newer.state, newer.agent_id, older.state) == (TaskState.OFFERED, "a", TaskState.WAITING)


def test_set_priority_on_an_offered_task_applies_when_the_offer_lapses(clock: VirtualClock) -> None:
    router = Router(clock, RouterConfig(offer_timeout_s=10, max_missed_offers=1))
    router.add_queue(Queue(name="support"))
    router.login("a")
    busy = router.submit(task())
    router.accept(busy.id, "a")
    old = router.submit(task())
    clock.advance(1)
    new = router.submit(task(priority=1))
    router.login("b")
    assert (new.state, new.agent_id, old.state) == (TaskState.OFFERED, "b", TaskState.WAITING)

    router.set_priority(new.id, -1)
    assert (new.state, new.agent_id) == (TaskState.OFFERED, "b")  # the pending offer stands
    clock.advance(11)
    router.tick()  # b misses it and goes away; `new` returns to the line, now behind `old`
    router.complete(busy.id)
    assert (old.agent_id, new.state) == ("a", TaskState.WAITING)
    assert check_invariants(router) == []


def test_set_priority_refuses_held_and_unknown_tasks(router: Router) -> None:
    router.login("a")
    t = router.submit(task())
    router.accept(t.id, "a")
    with pytest.raises(InvalidTransition):
        router.set_priority(t.id, 5)
    with pytest.raises(UnknownTask):
        router.set_priority("nope", 5)
    unchanged = router.submit(task())
    router.drain_events()
    router.set_priority(unchanged.id, 0)
    assert _events(router, TaskEventKind.REPRIORITIZED) == []  # nothing changed, nothing reported


def test_escalate_skills_level_zero_widens_and_an_agent_qualifies_at_once(router: Router) -> None:
    router.add_queue(Queue(name="korean", required_skills={"ko": 2}))
    router.login("en-only", skills={"en": 3})
    t = router.submit(task("korean"))
    assert t.state is TaskState.WAITING
    router.drain_events()

    router.escalate(t.id, skills={"ko": 0}, reason="sla")
    assert (t.state, t.agent_id) == (TaskState.OFFERED, "en-only")
    kinds = [e.kind for e in router.drain_events()]
    assert kinds[:2] == [TaskEventKind.ESCALATED, TaskEventKind.OFFERED]
    assert check_invariants(router) == []


def test_escalate_replace_skills_makes_them_the_whole_requirement(router: Router) -> None:
    router.add_queue(Queue(name="korean", required_skills={"ko": 1}))
    router.login("senior", skills={"senior": 1})  # no Korean: not eligible before
    t = router.submit(task("korean", required_skills={"vip": 1}))
    assert t.state is TaskState.WAITING
    router.drain_events()

    router.escalate(t.id, skills={"senior": 1}, replace_skills=True, reason="sla-breach-escalates")
    (ev,) = [e for e in router.drain_events() if e.kind is TaskEventKind.ESCALATED]
    assert ev.details == {"reason": "sla-breach-escalates", "skills": {"senior": 1}, "replace_skills": True}
    assert t.requirements(router._queues["korean"]) == {"senior": 1}
    assert (t.state, t.agent_id) == (TaskState.OFFERED, "senior")
    assert check_invariants(router) == []


def test_escalate_to_a_queue_keeps_the_place_in_line(router: Router, clock) -> None:
    router.add_queue(Queue(name="overflow"))
    router.add_queue(Queue(name="korean", required_skills={"ko": 1}))
    router.login("o")
    held = router.submit(task("overflow"))
    router.accept(held.id, "o")
    clock.advance(1)
    t = router.submit(task("korean"))
    enqueued = t.enqueued_at
    clock.advance(1)
    later = router.submit(task("overflow"))
    router.drain_events()

    router.escalate(t.id, queue="overflow")
    (ev,) = _events(router, TaskEventKind.ESCALATED)
    assert (ev.queue, ev.details["from_queue"]) == ("overflow", "korean")
    assert (t.queue, t.enqueued_at, t.state) == ("overflow", enqueued, TaskState.WAITING)
    router.complete(held.id)
    assert t.agent_id == "o" and later.state is TaskState.WAITING  # older than `later`: first
    assert check_invariants(router) == []


def test_escalate_an_offered_task_applies_when_the_offer_lapses(clock: VirtualClock) -> None:
    router = Router(clock, RouterConfig(offer_timeout_s=10, max_missed_offers=5))
    router.add_queue(Queue(name="korean", required_skills={"ko": 1}))
    router.login("kim", skills={"ko": 1})
    router.login("senior", skills={"senior": 1})
    t = router.submit(task("korean"))
    assert t.agent_id == "kim"
    router.escalate(t.id, skills={"senior": 1}, replace_skills=True)
    assert (t.state, t.agent_id) == (TaskState.OFFERED, "kim")  # the pending offer stands
    clock.advance(11)
    router.tick()
    assert (t.state, t.agent_id) == (TaskState.OFFERED, "senior")
    assert check_invariants(router) == []


def test_escalate_needs_something_to_change_and_a_live_waiting_or_offered_task(router: Router) -> None:
    t = router.submit(task())
    with pytest.raises(RoutingError):
        router.escalate(t.id)
    with pytest.raises(RoutingError):
        router.escalate(t.id, queue="no-such-queue")
    router.login("a")
    router.accept(t.id, "a")
    with pytest.raises(InvalidTransition):
        router.escalate(t.id, skills={"x": 1})


def test_escalated_requirements_survive_a_snapshot_and_restore(router: Router, clock: VirtualClock) -> None:
    router.add_queue(Queue(name="korean", required_skills={"ko": 1}))
    t = router.submit(task("korean"))
    router.escalate(t.id, skills={"senior": 1}, replace_skills=True)
    router.set_priority(t.id, 9)
    data = router.snapshot()

    again = Router(clock)
    again.add_queue(Queue(name="support"))
    again.add_queue(Queue(name="korean", required_skills={"ko": 1}))
    again.restore(tasks=data["tasks"], agents=data["agents"])
    again.login("senior", skills={"senior": 1})
    restored = again.task(t.id)
    assert (restored.state, restored.agent_id, restored.priority) == (TaskState.OFFERED, "senior", 9)


def test_live_changes_do_not_scan_the_line() -> None:
    def work(backlog: int) -> float:
        clock = VirtualClock()
        r = Router(clock)
        r.add_queue(Queue(name="q", required_skills={"ko": 1}))
        tasks = []
        for i in range(backlog):
            clock.advance(0.001)
            tasks.append(r.submit(task("q", priority=i % 3)))
        r.escalate(tasks[0].id, skills={"senior": 1})  # the new pool's one-off build is not measured
        start = r.work.n
        for t in tasks[1:201]:
            r.set_priority(t.id, 5)
            r.escalate(t.id, skills={"senior": 1})
        return (r.work.n - start) / 200

    small, large = work(300), work(20_000)
    assert large < 3 * small, (small, large)
