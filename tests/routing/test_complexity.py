"""O(log n) per decision, shown by counting heap work (never by timing)."""

from __future__ import annotations

from routing import Queue, Router, VirtualClock

from .helpers import task


def _work_per_decision(agents: int, backlog: int) -> float:
    clock = VirtualClock()
    r = Router(clock)
    r.add_queue(Queue(name="q", required_skills={"en": 1}))
    r.add_queue(Queue(name="other", required_skills={"fr": 1}))
    for i in range(agents):
        r.login(f"a{i}", skills={"en": 1, "fr": i % 2})
    # Everyone busy on a call, plus a backlog of waiting calls.
    held = []
    for _ in range(agents):
        t = r.submit(task("q"))
        r.accept(t.id, t.agent_id)
        held.append(t)
    for i in range(backlog):
        clock.advance(0.001)
        r.submit(task("q", priority=i % 3))
    r.drain_events()
    start = r.work.n
    decisions = 200
    for t in held[:decisions]:
        clock.advance(0.001)
        r.complete(t.id)  # frees an agent, who takes the best waiting task
        (offer,) = r.agent_tasks(t.agent_id)
        r.accept(offer.id, offer.agent_id)
        r.submit(task("q"))  # and a new arrival joins the line
    return (r.work.n - start) / decisions


def test_work_per_decision_does_not_grow_with_agents_or_tasks() -> None:
    small = _work_per_decision(agents=200, backlog=1_000)
    large = _work_per_decision(agents=10_000, backlog=20_000)
    # A scan would multiply the work by 50 (agents) or 20 (tasks); heap work grows with log n.
    assert large < 3 * small, (small, large)
    assert large < 100, large
