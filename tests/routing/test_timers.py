"""Sticky routing, escalation, SLA breach and queue statistics: everything driven by time."""

from __future__ import annotations

from routing import EscalationStep, Queue, Router, TaskEventKind, TaskState

from .helpers import task


def _events(router: Router, kind: TaskEventKind) -> list:
    return [e for e in router.drain_events() if getattr(e, "kind", None) is kind]


def test_sticky_task_goes_to_its_owner_when_free(router: Router) -> None:
    router.login("owner")
    router.login("other")
    t = router.submit(task(preferred_agent="owner"))
    assert t.agent_id == "owner"


def test_sticky_task_waits_for_the_busy_owner_then_gets_it(router: Router, clock) -> None:
    router.login("owner")
    busy = router.submit(task())
    router.accept(busy.id, "owner")
    router.login("other")
    t = router.submit(task(preferred_agent="owner"))
    assert t.state is TaskState.WAITING and t.parked_for == "owner"
    clock.advance(10)
    router.complete(busy.id)
    assert t.agent_id == "owner"


def test_sticky_task_falls_back_to_anyone_after_the_timeout(router: Router, clock) -> None:
    router.login("owner")
    busy = router.submit(task())
    router.accept(busy.id, "owner")
    router.login("other")
    t = router.submit(task(preferred_agent="owner", preference_timeout_s=15))
    clock.advance(14.9)
    router.tick()
    assert t.state is TaskState.WAITING
    clock.advance(0.1)
    router.tick()
    assert t.agent_id == "other"
    assert len(_events(router, TaskEventKind.PREFERENCE_EXPIRED)) == 1


def test_sticky_task_for_a_logged_out_owner_does_not_wait(router: Router) -> None:
    router.set_agent("owner")
    router.login("other")
    t = router.submit(task(preferred_agent="owner"))
    assert t.agent_id == "other"


def test_owner_logging_out_releases_its_waiting_tasks(router: Router) -> None:
    router.login("owner")
    busy = router.submit(task())
    router.accept(busy.id, "owner")
    router.login("other")
    other_busy = router.submit(task())
    router.accept(other_busy.id, "other")
    t = router.submit(task(preferred_agent="owner"))
    router.logout("owner")
    assert t.parked_for is None and t.state is TaskState.WAITING
    router.complete(other_busy.id)
    assert t.agent_id == "other"


def test_escalation_widens_skills_after_its_time(router: Router, clock) -> None:
    router.add_queue(Queue(name="expert", required_skills={"product": 3},
                           escalation=(EscalationStep(after_s=60, skills={"product": 1}),)))
    router.login("novice", skills={"product": 1})
    t = router.submit(task("expert"))
    clock.advance(59)
    router.tick()
    assert t.state is TaskState.WAITING
    clock.advance(1)
    router.tick()
    assert t.agent_id == "novice"
    (event,) = _events(router, TaskEventKind.ESCALATED)
    assert event.details["skills"] == {"product": 1}


def test_escalation_can_drop_a_skill_entirely(router: Router, clock) -> None:
    router.add_queue(Queue(name="ko", required_skills={"ko": 1, "billing": 1},
                           escalation=(EscalationStep(after_s=30, skills={"ko": 0}),)))
    router.login("a", skills={"billing": 1})
    t = router.submit(task("ko"))
    clock.advance(30)
    router.tick()
    assert t.agent_id == "a"


def test_escalation_moves_the_task_and_it_keeps_its_age(router: Router, clock) -> None:
    router.add_queue(Queue(name="tier1", required_skills={"t1": 1},
                           escalation=(EscalationStep(after_s=120, move_to="overflow"),)))
    router.add_queue(Queue(name="overflow"))
    router.login("b")
    busy = router.submit(task("overflow"))
    router.accept(busy.id, "b")
    t = router.submit(task("tier1"))
    clock.advance(60)
    later = router.submit(task("overflow"))
    clock.advance(60)
    router.tick()
    assert t.queue == "overflow" and t.state is TaskState.WAITING
    router.complete(busy.id)
    assert t.agent_id == "b" and later.state is TaskState.WAITING


def test_escalation_steps_fire_in_turn(router: Router, clock) -> None:
    router.add_queue(Queue(name="q", required_skills={"a": 3, "b": 3}, escalation=(
        EscalationStep(after_s=10, skills={"a": 1}), EscalationStep(after_s=20, skills={"b": 1}))))
    router.login("x", skills={"a": 1, "b": 1})
    t = router.submit(task("q"))
    clock.advance(10)
    router.tick()
    assert t.state is TaskState.WAITING and t.escalation_level == 1
    clock.advance(10)
    router.tick()
    assert t.agent_id == "x"


def test_sla_breach_is_emitted_once_over_offers_and_time(router: Router, clock) -> None:
    router.login("a")  # misses every offer, then goes away
    t = router.submit(task())
    seen = []
    for _ in range(10):
        clock.advance(15)
        router.tick()
        seen += _events(router, TaskEventKind.SLA_BREACHED)
    assert [e.task_id for e in seen] == [t.id]
    assert seen[0].details == {"sla_s": 20.0, "waited_s": 20.0}


def test_answered_task_never_breaches(router: Router, clock) -> None:
    router.login("a")
    t = router.submit(task())
    clock.advance(5)
    router.accept(t.id, "a")
    clock.advance(100)
    router.tick()
    assert _events(router, TaskEventKind.SLA_BREACHED) == [] and not t.sla_breached


def test_queue_stats_service_level_abandon_rate_and_longest_wait(router: Router, clock) -> None:
    router.login("a")
    fast = router.submit(task())
    clock.advance(5)
    router.accept(fast.id, "a")
    slow = router.submit(task())  # waits: a is on a call
    clock.advance(30)
    router.complete(fast.id)
    router.accept(slow.id, "a")  # answered after 30 s > 20 s
    gone = router.submit(task())
    clock.advance(10)
    router.abandon(gone.id)
    waiting = router.submit(task())
    clock.advance(7)
    (stats,) = router.queue_stats("support")
    assert (stats.answered, stats.answered_within_sla, stats.abandoned) == (2, 1, 1)
    assert stats.service_level == 1 / 3
    assert stats.abandon_rate == 1 / 3
    assert stats.asa_s == (5 + 30) / 2
    assert (stats.waiting, stats.longest_wait_s) == (1, 7.0)
    assert (stats.agents, stats.agents_available) == (1, 1)
    assert waiting.state is TaskState.WAITING


def test_queue_stats_window_slides(router: Router, clock) -> None:
    router.login("a")
    t = router.submit(task())
    router.accept(t.id, "a")
    clock.advance(3601)
    (stats,) = router.queue_stats("support")
    assert stats.answered == 0 and stats.service_level is None


def test_agent_states(router: Router) -> None:
    router.login("a")
    t = router.submit(task(channel="chat"))
    (state,) = router.agent_states()
    assert (state.presence, state.used, state.tasks) == ("available", 34, {t.id: "offered"})
