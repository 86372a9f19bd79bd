"""Routing decisions per second at a steady backlog, and how that scales with the number of agents.

    python -m bench.routing [--agents 1000] [--waiting 10000] [--queues 50] [--ops 50000]
                            [--scale 100,1000,10000] [--seed 1]

The issue 6 acceptance: decisions/s with 1,000 agents, 10,000 waiting tasks and 50 queues, >= 20,000,
staying near-flat from 100 to 10,000 agents (DESIGN section 7: O(log n) per decision).

Setup: 50 queues (10 languages x 5 products, each needing both skills, strategies mixed), agents
with 1-2 languages and 1-3 products, a mix of voice, chat and email. Tasks are submitted, and
accepted at once, until every agent is busy and `--waiting` tasks wait. Then the steady state, one
round after another: an agent completes a random held task and takes the best task among its
queues (a decision: a freed agent's pick), accepts it, and a new task arrives (a decision: the best
free agent for it, or its place in line), so the backlog stays where it is. Decisions/s counts both
kinds over the wall time of the whole round (complete + offer + accept + submit), so it is a
conservative figure. `heap ops` is routing.pools.Work per decision: the evidence that the cost does
not grow with n, independent of the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from routing import Queue, Router, RouterConfig, Strategy, Task, TaskEventKind, TaskState, VirtualClock

LANGUAGES = ["en", "ko", "ja", "zh", "es", "fr", "de", "pt", "vi", "th"]
PRODUCTS = ["support", "billing", "sales", "tech", "returns"]
CHANNELS = ["voice"] * 4 + ["chat"] * 4 + ["email"] * 2
OFFERED = TaskEventKind.OFFERED


def build(agents: int, queues: int, rng: random.Random) -> tuple[Router, VirtualClock, list[str]]:
    clock = VirtualClock()
    # No wrap-up timer and offers that never expire in the measured span: only decisions are timed.
    router = Router(clock, RouterConfig(wrapup_timeout_s=None, offer_timeout_s=3600))
    names = []
    strategies = list(Strategy)
    for i in range(queues):
        lang, product = LANGUAGES[i % len(LANGUAGES)], PRODUCTS[(i // len(LANGUAGES)) % len(PRODUCTS)]
        name = f"{product}-{lang}-{i}"
        router.add_queue(Queue(name=name, required_skills={lang: 1, product: 1}, strategy=strategies[i % 3],
                               sla_s=30))
        names.append(name)
    for i in range(agents):
        skills = {s: rng.randint(1, 5) for s in rng.sample(LANGUAGES, rng.randint(1, 2))}
        skills.update({s: rng.randint(1, 5) for s in rng.sample(PRODUCTS, rng.randint(1, 3))})
        router.login(f"agent-{i}", skills=skills)
    router.drain_events()
    return router, clock, names


def _accept_offers(router: Router, held: list[Task]) -> None:
    for ev in router.drain_events():
        if getattr(ev, "kind", None) is OFFERED:
            held.append(router.accept(ev.task_id, ev.agent_id))
    router.drain_events()


def run(agents: int, waiting: int, queues: int, ops: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    t0 = time.perf_counter()
    router, clock, names = build(agents, queues, rng)
    held: list[Task] = []
    n = 0

    def new_task() -> Task:
        nonlocal n
        n += 1
        return Task(id=str(n), queue=rng.choice(names), channel=rng.choice(CHANNELS), priority=rng.randint(0, 3))

    now = 0.0
    backlog = 0
    while backlog < waiting:
        now += 0.001
        clock.set(now)
        task = router.submit(new_task())
        backlog += task.state is TaskState.WAITING
        _accept_offers(router, held)
    setup_s = time.perf_counter() - t0

    work0 = router.work.n
    submit_s = freed_s = 0.0
    pc = time.perf_counter
    for _ in range(ops):
        now += 0.001
        clock.set(now)
        i = rng.randrange(len(held))
        held[i], held[-1] = held[-1], held[i]
        done = held.pop()
        t = pc()
        router.complete(done.id)  # the freed agent takes the best task among its queues
        _accept_offers(router, held)
        t1 = pc()
        router.submit(new_task())  # the best free agent for it, or its place in line
        _accept_offers(router, held)
        t2 = pc()
        freed_s += t1 - t
        submit_s += t2 - t1
    work = (router.work.n - work0) / (2 * ops)
    left = sum(1 for t in router.tasks() if t.state is TaskState.WAITING)
    return {
        "agents": agents, "queues": queues, "setup_s": setup_s, "waiting": left,
        "decisions_per_s": 2 * ops / (submit_s + freed_s), "submit_per_s": ops / submit_s,
        "freed_per_s": ops / freed_s, "heap_ops": work,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--ops", type=int, default=50_000, help="steady-state rounds (2 decisions each)")
    parser.add_argument("--scale", default="100,1000,10000", help="agent counts for the scaling table; '' to skip")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    main_run = run(args.agents, args.waiting, args.queues, args.ops, args.seed)
    print(f"routing: {args.agents:,} agents, {main_run['waiting']:,} waiting tasks, {args.queues} queues, "
          f"{args.ops:,} rounds")
    print(f"  {main_run['decisions_per_s']:,.0f} decisions/s (target >= 20,000)  "
          f"[{'PASS' if main_run['decisions_per_s'] >= 20_000 else 'BELOW TARGET'}]")
    counts = [int(x) for x in args.scale.split(",") if x.strip()]
    if not counts:
        return 0
    print()
    print(f"{'agents':>7} {'waiting':>8} {'decisions/s':>12} {'new task/s':>11} {'freed agent/s':>14} "
          f"{'heap ops':>9} {'vs first':>9}")
    first = None
    for agents in counts:
        r = main_run if agents == args.agents else run(agents, args.waiting, args.queues, args.ops, args.seed)
        first = first or r["decisions_per_s"]
        print(f"{agents:>7,} {r['waiting']:>8,} {r['decisions_per_s']:>12,.0f} {r['submit_per_s']:>11,.0f} "
              f"{r['freed_per_s']:>14,.0f} {r['heap_ops']:>9.1f} {r['decisions_per_s'] / first:>8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
