"""Routing decisions per second with 10,000 agents and 100,000 tasks (DESIGN section 7: O(log n)).

    python -m bench.routing_router [--agents 10000] [--tasks 100000] [--seed 1]

Phase 1 submits every task (each submit is a decision: best agent for the task, or join the line);
with 10,000 agents most tasks end up waiting. Phase 2 drains the backlog: each complete frees an
agent, which takes the best task among its queues (the other kind of decision). Prints
decisions per second for each phase and the heap work per decision, which stays flat as n grows.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

if __package__ in (None, ""):  # `python bench/x.py`: the project root, not bench/, heads sys.path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from routing import Queue, Router, Strategy, Task, TaskState, VirtualClock  # noqa: E402

LANGUAGES = ["en", "ko", "ja", "zh", "es"]
CHANNELS = ["voice"] * 5 + ["chat"] * 3 + ["email"] * 2


def build(agents: int, rng: random.Random) -> tuple[Router, VirtualClock]:
    clock = VirtualClock()
    router = Router(clock)
    strategies = list(Strategy)
    for i, lang in enumerate(LANGUAGES):
        router.add_queue(Queue(name=f"support-{lang}", required_skills={lang: 1}, strategy=strategies[i % 3]))
        router.add_queue(Queue(name=f"billing-{lang}", required_skills={lang: 1, "billing": 2}))
    for i in range(agents):
        skills = {lang: rng.randint(1, 5) for lang in rng.sample(LANGUAGES, rng.randint(1, 2))}
        if rng.random() < 0.4:
            skills["billing"] = rng.randint(1, 5)
        router.login(f"agent-{i}", skills=skills)
    router.drain_events()
    return router, clock


def run(agents: int, tasks: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    t0 = time.perf_counter()
    router, clock = build(agents, rng)
    setup_s = time.perf_counter() - t0

    work0 = router.work.n
    t0 = time.perf_counter()
    for n in range(tasks):
        clock.set(n * 0.01)
        lang = rng.choice(LANGUAGES)
        queue = f"{rng.choice(['support', 'billing'])}-{lang}"
        channel, priority = rng.choice(CHANNELS), rng.randint(0, 3)
        task = router.submit(Task(id=str(n), queue=queue, channel=channel, priority=priority))
        if task.state is TaskState.OFFERED:
            router.accept(task.id, task.agent_id)  # agents answer at once, so no offer expires
        router.drain_events()
    submit_s = time.perf_counter() - t0
    submit_work = (router.work.n - work0) / tasks
    waiting = sum(1 for t in router.tasks() if t.state is TaskState.WAITING)

    work0 = router.work.n
    now = clock.now()
    drained = 0
    t0 = time.perf_counter()
    held = [t for t in router.tasks() if t.state is TaskState.ASSIGNED]
    while held:
        nxt = []
        for task in held:
            agent = task.agent_id
            now += 0.001
            clock.set(now)
            router.complete(task.id)  # the agent takes its best next task here
            drained += 1
            for t in router.agent_tasks(agent):
                if t.state is TaskState.OFFERED:
                    router.accept(t.id, agent)
                    nxt.append(t)
        router.drain_events()
        held = nxt
    drain_s = time.perf_counter() - t0
    drain_work = (router.work.n - work0) / max(drained, 1)
    return {
        "agents": agents, "tasks": tasks, "setup_s": setup_s, "waiting_after_submit": waiting,
        "submit_decisions_per_s": tasks / submit_s, "submit_heap_work": submit_work,
        "drain_decisions_per_s": drained / drain_s, "drain_heap_work": drain_work, "completed": drained,
        "left_waiting": sum(1 for t in router.tasks() if t.state is TaskState.WAITING),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    r = run(args.agents, args.tasks, args.seed)
    print(f"routing: {r['agents']:,} agents, {r['tasks']:,} tasks (setup {r['setup_s']:.1f} s, "
          f"{r['waiting_after_submit']:,} waiting after submit)")
    print(f"  submit (task -> best agent or the line): {r['submit_decisions_per_s']:,.0f} decisions/s, "
          f"{r['submit_heap_work']:.1f} heap ops each")
    print(f"  drain  (freed agent -> best task):       {r['drain_decisions_per_s']:,.0f} decisions/s "
          f"(complete + next offer + accept), {r['drain_heap_work']:.1f} heap ops each; "
          f"{r['completed']:,} completed, {r['left_waiting']:,} left waiting (no eligible agent)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
