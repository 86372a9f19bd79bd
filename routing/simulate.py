"""Drive the real router in virtual time and compare it with Erlang C (DESIGN section 7 and 11).

One queue, one channel (voice: a call takes an agent's whole budget), Poisson arrivals, exponential
handling, agents who accept every offer at once and customers who never hang up: the M/M/N
assumptions of Erlang C, so over a long run the measured figures should meet the prediction. A gap
means the router loses time or order somewhere, which is the point of running the real thing.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass
from typing import Any

from .clock import VirtualClock
from .erlang import Prediction, predict
from .events import TaskEventKind
from .model import Queue, RouterConfig, Task
from .router import Router

_QUEUE = "simulated"


@dataclass(frozen=True, slots=True)
class SimulationResult:
    agents: int
    arrivals_per_hour: float
    aht_s: float
    sla_s: float
    hours: float
    seed: int
    calls: int
    erlang_c: Prediction
    simulated: Prediction

    def to_dict(self) -> dict[str, Any]:
        """The shape `omnihub simulate --json` prints (field names fixed by DESIGN section 11)."""
        return {
            "agents": self.agents, "arrivals_per_hour": self.arrivals_per_hour, "aht_s": self.aht_s,
            "sla_s": self.sla_s, "hours": self.hours, "seed": self.seed, "calls": self.calls,
            "erlang_c": self.erlang_c.to_dict(), "simulated": self.simulated.to_dict(),
        }


def simulate(agents: int, arrivals_per_hour: float, aht_s: float, sla_s: float = 20.0, hours: float = 100.0,
             seed: int = 1) -> SimulationResult:
    if agents < 1 or arrivals_per_hour <= 0 or aht_s <= 0 or hours <= 0:
        raise ValueError("agents, arrivals_per_hour, aht_s and hours must be positive")
    rng = random.Random(seed)
    clock = VirtualClock()
    router = Router(clock, RouterConfig(wrapup_timeout_s=None))
    router.add_queue(Queue(name=_QUEUE, sla_s=sla_s))
    for i in range(agents):
        router.login(f"agent-{i}")
    router.drain_events()

    horizon = hours * 3600.0
    rate = arrivals_per_hour / 3600.0
    mean_service = aht_s
    completions: list[tuple[float, str]] = []
    next_arrival = rng.expovariate(rate)
    calls = answered = waited = within = 0
    wait_sum = busy = 0.0
    offered = TaskEventKind.OFFERED

    while True:
        t_arrival = next_arrival if next_arrival < horizon else math.inf
        t_done = completions[0][0] if completions else math.inf
        if t_arrival == math.inf and t_done == math.inf:
            break
        if t_arrival <= t_done:
            clock.set(t_arrival)
            calls += 1
            router.submit(Task(id=str(calls), queue=_QUEUE, channel="voice"))
            next_arrival = t_arrival + rng.expovariate(rate)
        else:
            _, task_id = heapq.heappop(completions)
            clock.set(t_done)
            router.complete(task_id)
        now = clock.now()
        events = router.drain_events()
        while events:
            for event in events:
                if event.kind is offered:
                    task = router.accept(event.task_id, event.agent_id)
                    wait = now - task.enqueued_at
                    answered += 1
                    wait_sum += wait
                    waited += wait > 1e-9
                    within += wait <= sla_s
                    end = now + rng.expovariate(1.0 / mean_service)
                    busy += max(0.0, min(end, horizon) - now)
                    heapq.heappush(completions, (end, task.id))
            events = router.drain_events()

    simulated = Prediction(
        p_wait=waited / answered if answered else 0.0,
        service_level=within / answered if answered else 1.0,
        asa_s=wait_sum / answered if answered else 0.0,
        occupancy=busy / (agents * horizon),
    )
    return SimulationResult(agents, arrivals_per_hour, aht_s, sla_s, hours, seed, calls,
                            predict(agents, arrivals_per_hour, aht_s, sla_s), simulated)
