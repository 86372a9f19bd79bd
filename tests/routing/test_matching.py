from __future__ import annotations

import pytest

from routing import Capacity, Presence, Queue, Router, Strategy, TaskState
from routing.errors import DuplicateTask, QueueInUse, UnknownQueue

from .helpers import task


def test_new_task_goes_to_an_available_eligible_agent(router: Router) -> None:
    router.add_queue(Queue(name="billing", required_skills={"billing": 2}))
    router.login("junior", skills={"billing": 1})
    router.login("senior", skills={"billing": 3})
    t = router.submit(task("billing"))
    assert (t.state, t.agent_id) == (TaskState.OFFERED, "senior")


def test_eligibility_needs_every_required_skill_at_or_above_its_level(router: Router) -> None:
    router.add_queue(Queue(name="ko-billing", required_skills={"ko": 2, "billing": 1}))
    # Equally idle, so the id breaks the tie: a and b would win if they were eligible.
    router.login("a", skills={"ko": 1, "billing": 5})  # ko below the level
    router.login("b", skills={"ko": 5})  # billing missing
    router.login("c", skills={"ko": 2, "billing": 1})  # exactly the levels
    t = router.submit(task("ko-billing"))
    assert (t.state, t.agent_id) == (TaskState.OFFERED, "c")
    second = router.submit(task("ko-billing"))
    assert second.state is TaskState.WAITING  # c's call fills it; a and b still do not qualify


def test_task_waits_when_nobody_qualifies(router: Router) -> None:
    router.add_queue(Queue(name="korean", required_skills={"ko": 1}))
    router.login("a", skills={"en": 5})
    t = router.submit(task("korean"))
    assert t.state is TaskState.WAITING
    router.login("b", skills={"ko": 1})
    assert (t.state, t.agent_id) == (TaskState.OFFERED, "b")


def test_task_required_skills_add_to_the_queue(router: Router) -> None:
    router.login("plain")
    t = router.submit(task(required_skills={"vip": 1}))
    assert t.state is TaskState.WAITING
    router.login("vip-desk", skills={"vip": 1})
    assert t.agent_id == "vip-desk"


def test_freed_agent_takes_the_highest_priority_then_oldest_task(router: Router, clock) -> None:
    router.login("a")
    first = router.submit(task())
    router.accept(first.id, "a")
    old_low = router.submit(task(priority=0))
    clock.advance(1)
    new_high = router.submit(task(priority=5))
    clock.advance(1)
    newer_high = router.submit(task(priority=5))
    router.complete(first.id)
    assert (new_high.state, new_high.agent_id) == (TaskState.OFFERED, "a")
    router.accept(new_high.id, "a")
    router.complete(new_high.id)
    assert newer_high.state is TaskState.OFFERED
    router.accept(newer_high.id, "a")
    router.complete(newer_high.id)
    assert old_low.state is TaskState.OFFERED


def test_freed_agent_takes_the_best_task_across_its_queues(router: Router, clock) -> None:
    router.add_queue(Queue(name="sales"))
    router.login("a")
    busy = router.submit(task())
    router.accept(busy.id, "a")
    sales = router.submit(task("sales"))
    clock.advance(1)
    support = router.submit(task("support"))
    router.complete(busy.id)
    assert sales.state is TaskState.OFFERED and support.state is TaskState.WAITING


def test_a_call_blocks_chats_and_three_chats_block_a_call(router: Router) -> None:
    router.login("a")
    call = router.submit(task(channel="voice"))
    router.accept(call.id, "a")
    chat = router.submit(task(channel="chat"))
    assert chat.state is TaskState.WAITING  # the call spends the whole budget
    router.complete(call.id)
    assert chat.agent_id == "a"
    chats = [chat] + [router.submit(task(channel="chat")) for _ in range(2)]
    assert all(c.agent_id == "a" for c in chats)
    fourth = router.submit(task(channel="chat"))
    another_call = router.submit(task(channel="voice"))
    assert fourth.state is TaskState.WAITING and another_call.state is TaskState.WAITING
    assert router.agent("a").used == 102
    emails = [router.submit(task(channel="email")) for _ in range(2)]
    assert all(e.state is TaskState.WAITING for e in emails)  # 102 + 20 > 100


def test_a_call_needs_an_idle_agent(router: Router) -> None:
    router.login("a")
    chat = router.submit(task(channel="chat"))
    call = router.submit(task(channel="voice"))
    assert chat.agent_id == "a" and call.state is TaskState.WAITING
    router.accept(chat.id, "a")
    router.complete(chat.id)
    assert call.agent_id == "a"


def test_messages_share_the_budget_and_per_channel_maximums_hold(router: Router) -> None:
    router.login("a", capacity=Capacity(max_per_channel={"email": 2}))
    emails = [router.submit(task(channel="email")) for _ in range(3)]
    assert [e.state for e in emails] == [TaskState.OFFERED, TaskState.OFFERED, TaskState.WAITING]
    sms = [router.submit(task(channel="sms")) for _ in range(4)]
    assert [s.state for s in sms] == [TaskState.OFFERED] * 3 + [TaskState.WAITING]
    assert router.agent("a").used == 100


def test_plugin_channel_uses_the_default_cost(router: Router) -> None:
    router.login("a", capacity=Capacity(default_cost=50))
    tasks = [router.submit(task(channel="kakao")) for _ in range(3)]
    assert [t.state for t in tasks] == [TaskState.OFFERED, TaskState.OFFERED, TaskState.WAITING]


def test_longest_idle_prefers_the_agent_idle_longest(router: Router, clock) -> None:
    router.login("early")
    clock.advance(5)
    router.login("late")
    assert router.submit(task()).agent_id == "early"
    assert router.submit(task()).agent_id == "late"


def test_least_busy_prefers_the_agent_with_the_least_budget_in_use(router: Router, clock) -> None:
    router.add_queue(Queue(name="chat", strategy=Strategy.LEAST_BUSY))
    router.login("a")
    router.login("b")
    first = router.submit(task("chat", channel="chat"))
    second = router.submit(task("chat", channel="chat"))
    assert {first.agent_id, second.agent_id} == {"a", "b"}
    router.accept(first.id, first.agent_id)
    router.complete(first.id)
    clock.advance(1)
    third = router.submit(task("chat", channel="chat"))
    assert third.agent_id == first.agent_id  # idle now, while the other still holds a chat


def test_round_robin_cycles_through_agents(router: Router) -> None:
    router.add_queue(Queue(name="rr", strategy=Strategy.ROUND_ROBIN))
    for name in ("a", "b", "c"):
        router.login(name)
    picks = []
    for _ in range(6):
        t = router.submit(task("rr", channel="email"))
        picks.append(t.agent_id)
    assert picks[:3] == ["a", "b", "c"] and picks[3:] == picks[:3]


def test_away_and_offline_agents_get_nothing(router: Router) -> None:
    router.login("a")
    router.set_presence("a", Presence.AWAY)
    router.set_agent("b")  # registered, offline
    t = router.submit(task())
    assert t.state is TaskState.WAITING
    router.set_presence("a", "available")
    assert t.agent_id == "a"


def test_skill_change_moves_the_agent_between_pools(router: Router) -> None:
    router.add_queue(Queue(name="fr", required_skills={"fr": 1}))
    router.login("a", skills={"en": 1})
    t = router.submit(task("fr"))
    assert t.state is TaskState.WAITING
    router.set_agent("a", skills={"fr": 2})
    assert t.agent_id == "a"


def test_submit_rejects_unknown_queue_and_duplicates(router: Router) -> None:
    with pytest.raises(UnknownQueue):
        router.submit(task("nope"))
    router.submit(task(id="same"))
    with pytest.raises(DuplicateTask):
        router.submit(task(id="same"))


def test_update_queue_repools_waiting_tasks_in_order(router: Router, clock) -> None:
    router.add_queue(Queue(name="ko", required_skills={"ko": 3}))
    router.login("a", skills={"ko": 1})
    first = router.submit(task("ko"))
    clock.advance(1)
    second = router.submit(task("ko"))
    assert first.state is TaskState.WAITING
    router.update_queue(Queue(name="ko", required_skills={"ko": 1}, strategy=Strategy.ROUND_ROBIN))
    assert (first.agent_id, second.state) == ("a", TaskState.WAITING)


def test_remove_queue_only_when_empty(router: Router) -> None:
    router.add_queue(Queue(name="tmp"))
    t = router.submit(task("tmp"))
    with pytest.raises(QueueInUse):
        router.remove_queue("tmp")
    router.cancel(t.id)
    router.remove_queue("tmp")
    with pytest.raises(UnknownQueue):
        router.submit(task("tmp"))


def test_capacity_change_applies_to_new_offers(router: Router) -> None:
    router.login("a", capacity=Capacity(max_per_channel={"chat": 1}))
    chats = [router.submit(task(channel="chat")) for _ in range(2)]
    assert [c.state for c in chats] == [TaskState.OFFERED, TaskState.WAITING]
    router.set_agent("a", capacity=Capacity())
    assert chats[1].agent_id == "a"
