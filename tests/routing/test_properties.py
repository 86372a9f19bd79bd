"""Random sequences of operations never break the router's invariants (hypothesis).

After every step: no agent over capacity, every live task in exactly one place and one state, the
matching invariant (no waiting task beside an agent who could take it), counts consistent. Every offer
goes to an agent with the skills the task needs at that moment (checked inside the decision: the
task's requirements may widen or its queue change later), unless the agent is the one the task names
(relationship owner, last agent, transfer by name), which is the documented reason to skip skills. At
the end: no task lost (each submitted task is live or ended exactly once) and events agree with state.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing import (
    Capacity,
    EscalationStep,
    Presence,
    Queue,
    Router,
    RouterConfig,
    Strategy,
    Task,
    TaskEvent,
    TaskEventKind,
    TaskState,
    VirtualClock,
)
from routing.invariants import check_invariants

AGENTS = ["a0", "a1", "a2", "a3"]
QUEUES = ["q0", "q1", "q2"]
CHANNELS = ["voice", "chat", "email", "sms"]
SKILLS = [{}, {"en": 1}, {"en": 2, "fr": 2}, {"fr": 1}]
TERMINAL = {TaskEventKind.COMPLETED, TaskEventKind.ABANDONED, TaskEventKind.CANCELLED}

idx = st.integers(min_value=0, max_value=50)
submit = st.tuples(st.just("submit"), st.sampled_from(QUEUES), st.sampled_from(CHANNELS), st.integers(0, 3),
                   st.sampled_from([None, *AGENTS]), st.sampled_from([{}, {"en": 2}]))
# Weighted towards the work that moves tasks along, so that sequences reach assignments, wrap-ups and
# completions with a backlog waiting, where the interesting interleavings are.
ops = st.one_of(
    submit, submit, submit,
    st.tuples(st.just("accept"), idx), st.tuples(st.just("accept"), idx),
    st.tuples(st.just("complete"), idx),
    st.tuples(st.just("login"), st.sampled_from(AGENTS), st.sampled_from(SKILLS)),
    st.tuples(st.just("presence"), st.sampled_from(AGENTS), st.sampled_from(list(Presence))),
    st.tuples(st.just("capacity"), st.sampled_from(AGENTS),
              st.sampled_from([None, {"chat": 1}, {"email": 2}])),
    st.tuples(st.sampled_from(["accept", "decline", "wrapup", "complete", "abandon", "cancel"]), idx),
    st.tuples(st.just("transfer"), idx, st.sampled_from([None, *QUEUES]), st.sampled_from([None, *AGENTS])),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 5.0, 15.0, 25.0, 45.0, 130.0])),
)


def _router(clock: VirtualClock) -> Router:
    r = Router(clock, RouterConfig(offer_timeout_s=20, max_missed_offers=2, preference_timeout_s=30,
                                   wrapup_timeout_s=60))
    r.add_queue(Queue(name="q0", escalation=(EscalationStep(after_s=40, move_to="q1"),)))
    r.add_queue(Queue(name="q1", required_skills={"en": 1}, strategy=Strategy.LEAST_BUSY, sla_s=10,
                      escalation=(EscalationStep(after_s=30, skills={"en": 0}),)))
    r.add_queue(Queue(name="q2", required_skills={"fr": 2}, strategy=Strategy.ROUND_ROBIN,
                      escalation=(EscalationStep(after_s=20, skills={"fr": 1}),
                                  EscalationStep(after_s=50, move_to="q0"))))
    return r


def _watch_offers(router: Router) -> list[str]:
    """Wrap the router's one offering path and record each offer that breaks the skills rule."""
    problems: list[str] = []
    offer = router._offer

    def checked(task: Task, agent, now: float) -> None:
        required = task.requirements(router._queues[task.queue])
        if not agent.qualifies(required) and agent.id != task.preferred_agent:
            problems.append(f"{task.id} needs {required}, offered to {agent.id} with {agent.skills}")
        offer(task, agent, now)

    router._offer = checked  # type: ignore[method-assign]
    return problems


def _pick(router: Router, k: int, *states: TaskState) -> Task | None:
    live = [t for t in router.tasks() if t.state in states]
    return live[k % len(live)] if live else None


def _apply(router: Router, clock: VirtualClock, op: tuple, n: int) -> None:
    match op:
        case ("login", agent, skills):
            router.login(agent, skills=skills)
        case ("presence", agent, presence):
            if agent in {a.id for a in router.agents()}:
                router.set_presence(agent, presence)
        case ("capacity", agent, limits):
            # A lower capacity never takes accepted work away, so it can leave an agent above its new
            # limit until tasks end; change it only on idle agents to keep "never over" checkable.
            if agent not in {a.id for a in router.agents()} or not router.agent(agent).tasks:
                router.set_agent(agent, capacity=Capacity(max_per_channel=limits or {}))
        case ("submit", queue, channel, priority, preferred, skills):
            router.submit(Task(id=f"t{n}", queue=queue, channel=channel, priority=priority,
                               preferred_agent=preferred, required_skills=skills))
        case ("accept" | "decline", k):
            t = _pick(router, k, TaskState.OFFERED)
            if t is not None:
                getattr(router, op[0])(t.id, t.agent_id)
        case ("wrapup", k):
            if (t := _pick(router, k, TaskState.ASSIGNED)) is not None:
                router.wrapup(t.id, disposition="done")
        case ("complete", k):
            if (t := _pick(router, k, TaskState.ASSIGNED, TaskState.WRAP_UP)) is not None:
                router.complete(t.id)
        case ("abandon", k):
            if (t := _pick(router, k, TaskState.WAITING, TaskState.OFFERED)) is not None:
                router.abandon(t.id)
        case ("cancel", k):
            if (t := _pick(router, k, TaskState.WAITING, TaskState.OFFERED, TaskState.ASSIGNED)) is not None:
                router.cancel(t.id)
        case ("transfer", k, queue, agent):
            t = _pick(router, k, TaskState.WAITING, TaskState.OFFERED, TaskState.ASSIGNED)
            known = {a.id for a in router.agents()}
            if t is not None and (queue or agent) and (agent is None or agent in known):
                router.transfer(t.id, queue=queue, agent_id=agent)
        case ("advance", seconds):
            clock.advance(seconds)
            router.tick()


# 150 examples keep the suite quick; set ROUTING_PROPERTY_EXAMPLES=2000 for a deeper hunt.
@settings(max_examples=int(os.environ.get("ROUTING_PROPERTY_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SKILLS), min_size=1, max_size=len(AGENTS)),
       st.lists(ops, min_size=5, max_size=80))
def test_random_operations_keep_the_invariants(team: list[dict[str, int]], steps: list[tuple]) -> None:
    clock = VirtualClock()
    router = _router(clock)
    unskilled = _watch_offers(router)
    for agent, skills in zip(AGENTS, team, strict=False):
        router.login(agent, skills=skills)
    submitted: set[str] = set()
    events: list[TaskEvent] = []
    for n, op in enumerate(steps):
        _apply(router, clock, op, n)
        if op[0] == "submit":
            submitted.add(f"t{n}")
        assert check_invariants(router) == [], op
        assert unskilled == [], op
        events += [e for e in router.drain_events() if isinstance(e, TaskEvent)]

    live = {t.id: t for t in router.tasks()}
    ended = [e.task_id for e in events if e.kind in TERMINAL]
    assert len(ended) == len(set(ended)), "a task ended twice"
    assert set(live).isdisjoint(ended)
    assert submitted == set(live) | set(ended), "a task was lost"
    last = {e.task_id: e.state for e in events}
    for task_id, task in live.items():
        assert last[task_id] is task.state
