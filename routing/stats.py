"""Figures for the supervisor API: per-queue service level over a sliding window, agent states."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


class QueueWindow:
    """Answers and abandons of the last `window_s` seconds, kept as a deque so each record and each
    read is amortized O(1). Service level = answered within SLA / (answered + abandoned)."""

    __slots__ = ("window_s", "_events", "answered", "within", "abandoned", "wait_sum")

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        # (at, kind: 0 answered within SLA, 1 answered late, 2 abandoned; wait)
        self._events: deque[tuple[float, int, float]] = deque()
        self.answered = 0
        self.within = 0
        self.abandoned = 0
        self.wait_sum = 0.0

    def answer(self, at: float, wait: float, within_sla: bool) -> None:
        self.prune(at)
        self._events.append((at, 0 if within_sla else 1, wait))
        self.answered += 1
        self.within += within_sla
        self.wait_sum += wait

    def abandon(self, at: float) -> None:
        self.prune(at)
        self._events.append((at, 2, 0.0))
        self.abandoned += 1

    def prune(self, now: float) -> None:
        horizon = now - self.window_s
        events = self._events
        while events and events[0][0] < horizon:
            _, kind, wait = events.popleft()
            if kind == 2:
                self.abandoned -= 1
            else:
                self.answered -= 1
                self.within -= kind == 0
                self.wait_sum -= wait


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    waiting: int
    offered: int
    longest_wait_s: float
    sla_s: float
    window_s: float
    answered: int  # in the window
    answered_within_sla: int
    abandoned: int
    service_level: float | None  # None until something was answered or abandoned in the window
    abandon_rate: float | None
    asa_s: float | None
    agents: int  # agents whose skills meet the queue's own requirements
    agents_available: int  # ... and whose presence is available

    def to_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class AgentState:
    id: str
    presence: str
    idle_since: float | None
    missed_in_row: int
    used: int
    budget: int
    tasks: dict[str, str] = field(default_factory=dict)  # task id -> task state

    def to_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}
