"""A full consistency check of a router's state, for tests and for debugging a live hub.

O(agents x tasks): never call it on a hot path. Returns the problems found, empty when sound.
"""

from __future__ import annotations

from collections import Counter

from .model import HOLDING_STATES, TaskState
from .pools import task_entry
from .router import Router


def check_invariants(router: Router) -> list[str]:
    problems: list[str] = []
    tasks = router._tasks
    agents = router._agents

    counts: dict[str, Counter[TaskState]] = {q: Counter() for q in router._queues}
    for t in tasks.values():
        if t.state is not TaskState.WAITING and t.state not in HOLDING_STATES:
            problems.append(f"task {t.id} is live but {t.state}")
        counts[t.queue][t.state] += 1
    for q, expected in counts.items():
        stored = {s: n for s, n in router._counts[q].items() if n}
        if stored != {s: n for s, n in expected.items() if n}:
            problems.append(f"queue {q} counts {stored} != {dict(expected)}")

    for a in agents.values():
        held = {t.id: t.channel for t in tasks.values() if t.agent_id == a.id and t.state in HOLDING_STATES}
        if held != a.tasks:
            problems.append(f"agent {a.id} holds {a.tasks}, tasks say {held}")
        costs = [a.capacity.cost(ch) for ch in held.values()]
        if a.used != sum(costs):
            problems.append(f"agent {a.id} used {a.used} != {sum(costs)}")
        # Every task was admitted with budget left, and an exclusive task (a call) is held alone.
        if costs and sum(costs) - max(costs) >= a.capacity.budget:
            problems.append(f"agent {a.id} over budget: {held}")
        if any(c >= a.capacity.budget for c in costs) and len(costs) > 1:
            problems.append(f"agent {a.id} holds an exclusive task with others: {held}")
        per_channel = Counter(held.values())
        for ch, limit in a.capacity.max_per_channel.items():
            if per_channel[ch] > limit:
                problems.append(f"agent {a.id} holds {per_channel[ch]} {ch} tasks, limit {limit}")
        if {ch: n for ch, n in a.counts.items() if n} != dict(per_channel):
            problems.append(f"agent {a.id} channel counts {a.counts} != {dict(per_channel)}")

    for pool in router._pools.values():
        qualified = {a.id for a in agents.values() if a.qualifies(pool.requirements)}
        if set(pool.members) != qualified:
            problems.append(f"pool {pool.key} members {sorted(pool.members)} != {sorted(qualified)}")

    for t in tasks.values():
        if t.state is TaskState.WAITING:
            problems += _check_waiting(router, t)
        elif t.agent_id not in agents or t.pool is not None or t.parked_for is not None:
            problems.append(f"task {t.id} is {t.state} but agent={t.agent_id} pool={t.pool} "
                            f"parked={t.parked_for}")
    return problems


def _check_waiting(router: Router, t) -> list[str]:  # noqa: ANN001
    problems = []
    if t.agent_id is not None:
        problems.append(f"waiting task {t.id} names agent {t.agent_id}")
    if (t.pool is None) == (t.parked_for is None):
        return [*problems, f"waiting task {t.id} must be in exactly one place "
                           f"(pool={t.pool}, parked={t.parked_for})"]
    entry = task_entry(t)[:4]
    if t.parked_for is not None:
        agent = router._agents[t.parked_for]
        if not any(e[:4] == entry and e[4] is t for e in agent.parked):
            problems.append(f"task {t.id} parked for {agent.id} but not in its heap")
        if agent.can_take(t.channel):
            problems.append(f"task {t.id} waits for {agent.id}, who has room")
        return problems
    pool = t.pool
    if not any(e[:4] == entry and e[4] is t for e in pool.task_heaps.get(t.channel, [])):
        problems.append(f"task {t.id} not in its pool's heap")
    if t.requirements(router._queues[t.queue]) != pool.requirements or pool.queue != t.queue:
        problems.append(f"task {t.id} is in the wrong pool {pool.key}")
    for a in pool.members.values():
        if a.can_take(t.channel) and a.id not in t.declined_by:
            problems.append(f"task {t.id} waits while agent {a.id} could take it")
    live = sum(1 for x in router._tasks.values() if x.pool is pool and x.channel == t.channel
               and x.state is TaskState.WAITING)
    if pool.live.get(t.channel) != live:
        problems.append(f"pool {pool.key} counts {pool.live.get(t.channel)} {t.channel} tasks, has {live}")
    return problems
