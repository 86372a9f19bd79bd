"""Erlang C (M/M/N queue, no abandonment): the textbook prediction the simulator is checked against.

Traffic A = arrival rate x average handling time, in erlangs. The probability of waiting comes from
Erlang B by its recursion B(0) = 1, B(k) = A B(k-1) / (k + A B(k-1)), then
C = N B / (N - A (1 - B)). The recursion never forms A^N or N!, so it stays exact for hundreds of
agents where the factorial formula overflows a float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def erlang_b(agents: int, traffic: float) -> float:
    """Blocking probability of an M/M/N/N system."""
    if agents < 0 or traffic < 0:
        raise ValueError("agents and traffic must not be negative")
    b = 1.0
    for k in range(1, agents + 1):
        b = traffic * b / (k + traffic * b)
    return b


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that an arriving contact waits; 1.0 when the agents cannot keep up (A >= N)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    b = erlang_b(agents, traffic)
    return agents * b / (agents - traffic * (1.0 - b))


def service_level(agents: int, traffic: float, aht_s: float, threshold_s: float) -> float:
    """Share of contacts answered within `threshold_s`: 1 - C e^{-(N - A) t / AHT}."""
    if agents <= traffic:
        return 0.0
    return 1.0 - erlang_c(agents, traffic) * math.exp(-(agents - traffic) * threshold_s / aht_s)


def asa(agents: int, traffic: float, aht_s: float) -> float:
    """Average speed of answer, seconds: C AHT / (N - A); infinite when A >= N."""
    if agents <= traffic:
        return math.inf
    return erlang_c(agents, traffic) * aht_s / (agents - traffic)


def occupancy(agents: int, traffic: float) -> float:
    return min(1.0, traffic / agents) if agents else 1.0


def traffic_erlangs(arrivals_per_hour: float, aht_s: float) -> float:
    return arrivals_per_hour * aht_s / 3600.0


@dataclass(frozen=True, slots=True)
class Prediction:
    p_wait: float
    service_level: float
    asa_s: float
    occupancy: float

    def to_dict(self) -> dict[str, float]:
        return {"p_wait": self.p_wait, "service_level": self.service_level, "asa_s": self.asa_s,
                "occupancy": self.occupancy}


def predict(agents: int, arrivals_per_hour: float, aht_s: float, sla_s: float) -> Prediction:
    a = traffic_erlangs(arrivals_per_hour, aht_s)
    return Prediction(erlang_c(agents, a), service_level(agents, a, aht_s, sla_s), asa(agents, a, aht_s),
                      occupancy(agents, a))


def staffing(arrivals_per_hour: float, aht_s: float, sla_s: float, target: float = 0.8,
             max_agents: int = 100_000) -> int:
    """The smallest agent count whose service level at `sla_s` reaches `target` (0 < target < 1).

    Service level rises with N, so we walk up from the first stable count (floor(A) + 1); the walk
    is O(sqrt(A)) steps past it in practice (square-root staffing), each O(N).
    """
    if not 0 < target < 1:
        raise ValueError("target must be between 0 and 1")
    if aht_s <= 0 or sla_s < 0 or arrivals_per_hour < 0:
        raise ValueError("aht_s must be positive, sla_s and arrivals_per_hour not negative")
    a = traffic_erlangs(arrivals_per_hour, aht_s)
    if a == 0:
        return 0
    n = math.floor(a) + 1
    while service_level(n, a, aht_s, sla_s) < target:
        n += 1
        if n > max_agents:
            raise ValueError(f"no staffing up to {max_agents} agents reaches {target}")
    return n
