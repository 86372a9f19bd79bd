from __future__ import annotations

import pytest

from routing import AgentEvent, Presence, Queue, Router, TaskEventKind, TaskState
from routing.errors import InvalidTransition, UnknownTask

from .helpers import kinds, task


def test_offer_expiry_puts_the_task_back_in_its_place(router: Router, clock) -> None:
    router.login("a")
    router.login("b")
    blocker = router.submit(task())  # to a (idle longest by id tie-break)
    router.accept(blocker.id, "a")
    old = router.submit(task())  # offered to b, who will not answer
    assert old.agent_id == "b"
    clock.advance(1)
    newer = router.submit(task())
    enqueued = old.enqueued_at
    clock.advance(20)
    router.tick()
    assert old.enqueued_at == enqueued
    # b was offered `old` most recently, so after the expiry `old` is still first in line; the only
    # free agent is b again (a is busy), and it gets `old`, not `newer`.
    assert (old.state, old.agent_id) == (TaskState.OFFERED, "b")
    assert newer.state is TaskState.WAITING
    assert router.agent("b").missed_in_row == 1


def test_accept_after_expiry_is_refused(router: Router, clock) -> None:
    router.login("a")
    router.login("b")
    clock.advance(1)
    t = router.submit(task())
    assert t.agent_id == "a"
    clock.advance(20)
    with pytest.raises(InvalidTransition):
        router.accept(t.id, "a")  # the expiry is applied first; the task went on to b
    assert (t.agent_id, t.offer_seq) == ("b", 2)


def test_agent_missing_n_offers_in_a_row_goes_away(router: Router, clock) -> None:
    router.login("a")
    t = router.submit(task())
    router.drain_events()
    for _ in range(3):
        clock.advance(20)
        router.tick()
    events = router.drain_events()
    assert router.agent("a").presence is Presence.AWAY
    assert t.state is TaskState.WAITING
    away = [e for e in events if isinstance(e, AgentEvent)]
    assert away[-1].details == {"previous": "available", "reason": "missed_offers"}
    assert sum(e.kind is TaskEventKind.OFFER_EXPIRED for e in events if not isinstance(e, AgentEvent)) == 3


def test_accepting_resets_the_missed_offer_count(router: Router, clock) -> None:
    router.login("a")
    t = router.submit(task())
    clock.advance(20)
    router.tick()
    router.accept(t.id, "a")
    assert router.agent("a").missed_in_row == 0


def test_decline_returns_the_task_and_never_reoffers_it_to_that_agent(router: Router, clock) -> None:
    router.login("a")
    t = router.submit(task())
    router.decline(t.id, "a", reason="wrong language")
    assert t.state is TaskState.WAITING and "a" in t.declined_by
    other = router.submit(task())
    assert other.agent_id == "a"  # a still takes other work
    router.login("b")
    assert t.agent_id == "b"


def test_decline_by_someone_else_is_refused(router: Router) -> None:
    router.login("a")
    t = router.submit(task())
    with pytest.raises(InvalidTransition):
        router.decline(t.id, "b")


def test_transfer_to_a_queue_frees_the_agent_and_requeues(router: Router, clock) -> None:
    router.add_queue(Queue(name="billing", required_skills={"billing": 1}))
    router.login("a")
    t = router.submit(task())
    router.accept(t.id, "a")
    clock.advance(30)
    router.transfer(t.id, queue="billing")
    assert (t.state, t.queue, router.agent("a").used) == (TaskState.WAITING, "billing", 0)
    assert t.enqueued_at == clock.now()  # answered once: a new wait starts
    router.login("b", skills={"billing": 1})
    assert t.agent_id == "b"


def test_transfer_to_an_agent_waits_for_that_agent(router: Router, clock) -> None:
    router.login("a")
    router.login("b")
    router.login("c")
    t = router.submit(task())
    router.accept(t.id, t.agent_id)
    busy = router.submit(task())
    router.accept(busy.id, busy.agent_id)
    target = ({"a", "b", "c"} - {t.agent_id, busy.agent_id}).pop()
    router.set_presence(target, Presence.AWAY)
    owner = busy.agent_id
    router.transfer(t.id, agent_id=owner)
    assert t.state is TaskState.WAITING and t.parked_for == owner
    router.complete(busy.id)
    assert t.agent_id == owner


def test_wrapup_keeps_capacity_until_complete(router: Router, clock) -> None:
    router.login("a")
    t = router.submit(task())
    router.accept(t.id, "a")
    router.wrapup(t.id, disposition="resolved", note="address changed")
    waiting = router.submit(task())
    assert waiting.state is TaskState.WAITING
    router.complete(t.id)
    assert (t.state, t.disposition, t.note) == (TaskState.COMPLETED, "resolved", "address changed")
    assert waiting.agent_id == "a"
    with pytest.raises(UnknownTask):
        router.task(t.id)


def test_wrapup_timer_completes_the_task(router: Router, clock) -> None:
    router.login("a")
    t = router.submit(task())
    router.accept(t.id, "a")
    router.wrapup(t.id)
    clock.advance(59)
    router.tick()
    assert t.state is TaskState.WRAP_UP
    clock.advance(1)
    router.tick()
    assert t.state is TaskState.COMPLETED and router.agent("a").used == 0


def test_complete_needs_an_assignment(router: Router) -> None:
    t = router.submit(task())
    with pytest.raises(InvalidTransition):
        router.complete(t.id)


def test_abandon_while_waiting_and_while_offered(router: Router) -> None:
    waiting = router.submit(task())
    router.abandon(waiting.id)
    assert waiting.state is TaskState.ABANDONED
    router.login("a")
    offered = router.submit(task())
    router.abandon(offered.id)
    assert offered.state is TaskState.ABANDONED and router.agent("a").used == 0
    assert router.queue_stats("support")[0].abandoned == 2


def test_abandon_after_assignment_is_refused(router: Router) -> None:
    router.login("a")
    t = router.submit(task())
    router.accept(t.id, "a")
    with pytest.raises(InvalidTransition):
        router.abandon(t.id)


def test_cancel_frees_capacity_from_any_live_state(router: Router) -> None:
    router.login("a")
    t = router.submit(task())
    router.accept(t.id, "a")
    nxt = router.submit(task())
    router.cancel(t.id, reason="duplicate")
    assert t.state is TaskState.CANCELLED and nxt.agent_id == "a"


def test_logout_withdraws_offers_but_keeps_accepted_work(router: Router) -> None:
    router.login("a")
    chat1 = router.submit(task(channel="chat"))
    router.accept(chat1.id, "a")
    chat2 = router.submit(task(channel="chat"))
    router.logout("a")
    assert chat1.state is TaskState.ASSIGNED and chat2.state is TaskState.WAITING
    assert router.agent("a").used == 34


def test_events_are_plain_data_in_order(router: Router) -> None:
    router.login("a")
    t = router.submit(task(id="x"))
    router.accept("x", "a")
    router.complete("x")
    assert kinds(router) == [("created", "x"), ("offered", "x"), ("assigned", "x"), ("completed", "x")]
    assert t.ended_at is not None
