"""Routing decisions per second at a steady backlog, and how that scales with the number of agents.

    python -m bench.routing_decisions [--agents 1000] [--waiting 10000] [--queues 50] [--ops 50000]
                            [--scale 100,1000,10000] [--repeat 3] [--seed 1]

The issue 6 acceptance: decisions/s with 1,000 agents, 10,000 waiting tasks and 50 queues, >= 20,000,
staying near-flat from 100 to 10,000 agents (DESIGN section 7: O(log n) per decision).

Setup: 50 queues (10 languages x 5 products, each needing both skills, strategies mixed), agents
with 1-2 languages and 1-3 products, tasks on voice, chat and email (4:4:2). The measured state is
the same at every scale: a saturated floor with exactly `--waiting` tasks in line.

1. Fill: for each agent in turn, while it has room on a channel, a task arrives in one of its
   queues on that channel (and goes to the best agent with room there, accepted at once). No task
   waits in this phase, and at its end no agent has room for any (queue, channel) it serves.
2. Backlog: `--waiting` tasks arrive, split evenly over the queues and by the channel mix (80 per
   voice or chat line, 40 per email line with the defaults), priorities 0-3. All of them wait.
3. Steady state, one round after another: an agent completes a random held task and takes the
   best tasks among its queues until its budget is spent (decisions: a freed agent's picks, each
   accepted at once); then, for each task it took, a new task arrives in that task's queue and
   channel (decisions: each new task's place in line, as no agent has room for it). Every line
   keeps its length, so the backlog stays at `--waiting`, every freed agent with room finds work
   and every arrival waits, at every scale. (Some completions leave no room: a budget's last task
   may overshoot it, e.g. three chats and an email are 122, and an email done leaves 102. The
   router makes no decision for those; their time still counts. Their share is the same at every
   scale, ~13% with the defaults.) Before the first round the clock moves past the SLA of every
   task so far and the timers due are applied, so the fill's stale SLA timers (one per answered
   task: 25,000 at 10,000 agents) do not pop inside the timed rounds at one scale only.

Decisions/s counts both kinds over the wall time of the whole round (complete + offers + accepts +
submits), so it is a conservative figure. The table prints the workload beside the speed, so a reader
can see it is the same across scales: waiting at the end, the share of arrivals that found an agent
with room at once, the share of freed agents with room and the share of those that found work, and
tasks taken per round.
`heap ops` is routing.pools.Work per decision: the evidence that the cost does not grow with n,
independent of the machine. With `--repeat` each figure is the median of that many runs, the scales
interleaved so that a noisy spell on the machine does not land on one scale only.

Before this setup (until the routing-scale branch) the bench submitted uniformly random tasks until
10,000 had waited and then submitted one uniformly random task per round. That is not a steady
state: arrivals were spread evenly over the queues while service follows staffing, so lines drifted.
At 10,000 agents the fill stopped with 100 of the 150 (queue, channel) lines still empty, the
backlog then grew to ~18,000, ~60% of arrivals found an agent at once and most freed agents found
nothing: a different, cheaper-per-arrival and dearer-per-freed-agent workload than at 100 agents.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

if __package__ in (None, ""):  # `python bench/x.py`: the project root, not bench/, heads sys.path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from routing import Queue, Router, RouterConfig, Strategy, Task, TaskEventKind, TaskState, VirtualClock

LANGUAGES = ["en", "ko", "ja", "zh", "es", "fr", "de", "pt", "vi", "th"]
PRODUCTS = ["support", "billing", "sales", "tech", "returns"]
CHANNELS = ["voice"] * 4 + ["chat"] * 4 + ["email"] * 2
OFFERED = TaskEventKind.OFFERED


def build(agents: int, queues: int, rng: random.Random) -> tuple[Router, VirtualClock, list[Queue]]:
    clock = VirtualClock()
    # No wrap-up timer and offers that never expire in the measured span: only decisions are timed.
    router = Router(clock, RouterConfig(wrapup_timeout_s=None, offer_timeout_s=3600))
    strategies = list(Strategy)
    for i in range(queues):
        lang, product = LANGUAGES[i % len(LANGUAGES)], PRODUCTS[(i // len(LANGUAGES)) % len(PRODUCTS)]
        router.add_queue(Queue(name=f"{product}-{lang}-{i}", required_skills={lang: 1, product: 1},
                               strategy=strategies[i % 3], sla_s=30))
    for i in range(agents):
        skills = {s: rng.randint(1, 5) for s in rng.sample(LANGUAGES, rng.randint(1, 2))}
        skills.update({s: rng.randint(1, 5) for s in rng.sample(PRODUCTS, rng.randint(1, 3))})
        router.login(f"agent-{i}", skills=skills)
    router.drain_events()
    return router, clock, router.queues()


def _accept_offers(router: Router, held: list[Task]) -> int:
    """Accept every pending offer at once; returns how many."""
    n = 0
    for ev in router.drain_events():
        if getattr(ev, "kind", None) is OFFERED:
            held.append(router.accept(ev.task_id, ev.agent_id))
            n += 1
    router.drain_events()
    return n


def _backlog_lines(queues: list[Queue], waiting: int) -> list[tuple[str, str]]:
    """(queue, channel) per waiting task: an even split over the queues and by the channel mix."""
    lines = [(q.name, ch) for q in queues for ch in CHANNELS]  # a channel listed k times gets k shares
    return [lines[i % len(lines)] for i in range(waiting)]


class Floor:
    """The router after the setup (steps 1 and 2 above), and what a round needs."""

    def __init__(self, agents: int, waiting: int, queues: int, seed: int) -> None:
        self.rng = rng = random.Random(seed)
        t0 = time.perf_counter()
        self.router, self.clock, qs = build(agents, queues, rng)
        self.held: list[Task] = []
        self.n = 0
        self.now = 0.0
        router, held = self.router, self.held
        # 1. Fill every agent's capacity where a task of its queues fits.
        channels = sorted(set(CHANNELS))
        for agent in router.agents():
            served = [q.name for q in qs if agent.qualifies(q.required_skills)]
            while True:
                room = [ch for ch in CHANNELS if agent.can_take(ch)]
                if not room:
                    break
                task = self.submit(rng.choice(served), rng.choice(room))
                assert task.state is TaskState.OFFERED, "the fill must not make anyone wait"
                _accept_offers(router, held)
        assert not any(a.can_take(ch) for a in router.agents() for ch in channels)
        # 2. The backlog, every line non-empty: nobody has room for any of it.
        lines = _backlog_lines(qs, waiting)
        rng.shuffle(lines)
        for queue, channel in lines:
            self.submit(queue, channel)
            assert _accept_offers(router, held) == 0
        # Past every SLA so far, and the due timers applied here: the fill's answered tasks leave stale
        # SLA timers (25,000 at 10,000 agents, 270 at 100) that would otherwise pop in the timed span.
        self.tick(max(q.sla_s for q in qs) + 1)
        router.advance()
        router.drain_events()
        self.setup_s = time.perf_counter() - t0

    def tick(self, seconds: float = 0.001) -> None:
        self.now += seconds
        self.clock.set(self.now)

    def submit(self, queue: str, channel: str) -> Task:
        self.tick()
        return self.arrive(queue, channel)

    def arrive(self, queue: str, channel: str) -> Task:
        self.n += 1
        return self.router.submit(Task(id=str(self.n), queue=queue, channel=channel,
                                       priority=self.rng.randint(0, 3)))

    def pick_done(self) -> Task:
        """A random held task, removed from `held`."""
        held = self.held
        i = self.rng.randrange(len(held))
        held[i], held[-1] = held[-1], held[i]
        return held.pop()


def run(agents: int, waiting: int, queues: int, ops: int, seed: int) -> dict[str, float]:
    floor = Floor(agents, waiting, queues, seed)
    router, held = floor.router, floor.held

    # 3. Steady state.
    work0 = router.work.n
    submit_s = freed_s = 0.0
    picks = arrivals = at_once = found = with_room = 0
    pc = time.perf_counter
    for _ in range(ops):
        floor.tick()
        done = floor.pick_done()
        agent = router.agent(done.agent_id)
        room = agent.used - agent.capacity.cost(done.channel) < agent.capacity.budget
        before = len(held)
        t = pc()
        router.complete(done.id)  # the freed agent takes the best tasks among its queues
        _accept_offers(router, held)
        t1 = pc()
        taken = held[before:]
        for task in taken:  # each line it took from gets a new arrival: its best free agent or its place
            floor.arrive(task.queue, task.channel)
            at_once += _accept_offers(router, held)
        t2 = pc()
        freed_s += t1 - t
        submit_s += t2 - t1
        picks += len(taken)
        arrivals += len(taken)
        found += bool(taken)
        with_room += room
    work = (router.work.n - work0) / (picks + arrivals)
    left = sum(1 for t in router.tasks() if t.state is TaskState.WAITING)
    return {
        "agents": agents, "queues": queues, "setup_s": floor.setup_s, "waiting": left,
        "decisions_per_s": (picks + arrivals) / (submit_s + freed_s), "submit_per_s": arrivals / submit_s,
        "freed_per_s": picks / freed_s, "heap_ops": work, "at_once": at_once / max(arrivals, 1),
        "found": found / max(with_room, 1), "room": with_room / ops, "per_freed": picks / ops,
    }


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--ops", type=int, default=50_000, help="steady-state rounds (one freed agent each)")
    parser.add_argument("--scale", default="100,1000,10000",
                        help="agent counts for the scaling table; '' to skip")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is printed")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    counts = [int(x) for x in args.scale.split(",") if x.strip()]
    scales = list(dict.fromkeys([args.agents, *counts]))
    runs: dict[int, list[dict[str, float]]] = {a: [] for a in scales}
    for rep in range(args.repeat):
        for agents in scales[rep % len(scales):] + scales[:rep % len(scales)]:
            runs[agents].append(run(agents, args.waiting, args.queues, args.ops, args.seed))
    med = {a: _median(r) for a, r in runs.items()}

    main_run = med[args.agents]
    rate = [r["decisions_per_s"] for r in runs[args.agents]]
    print(f"routing: {args.agents:,} agents, {main_run['waiting']:,.0f} waiting tasks, {args.queues} queues, "
          f"{args.ops:,} rounds, median of {args.repeat}")
    verdict = "PASS" if main_run["decisions_per_s"] >= 20_000 else "BELOW TARGET"
    print(f"  {main_run['decisions_per_s']:,.0f} decisions/s (runs {min(rate):,.0f}-{max(rate):,.0f}; "
          f"target >= 20,000)  [{verdict}]")
    if not counts:
        return 0
    print()
    print(f"{'agents':>7} {'waiting':>8} {'at once':>8} {'room':>6} {'found':>6} {'taken':>6} "
          f"{'decisions/s':>12} {'new task/s':>11} {'freed agent/s':>14} {'heap ops':>9} {'vs first':>9}")
    first = med[counts[0]]["decisions_per_s"]
    for agents in counts:
        r = med[agents]
        print(f"{agents:>7,} {r['waiting']:>8,.0f} {r['at_once']:>7.1%} {r['room']:>6.1%} {r['found']:>6.1%} "
              f"{r['per_freed']:>6.2f} {r['decisions_per_s']:>12,.0f} {r['submit_per_s']:>11,.0f} "
              f"{r['freed_per_s']:>14,.0f} {r['heap_ops']:>9.1f} {r['decisions_per_s'] / first:>8.2f}x")
    print("  at once: arrivals that found an agent with room; room: freed agents with room after the")
    print("  completion; found: of those, the share that took work; taken: tasks per round (each a")
    print("  decision, as is each arrival)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
