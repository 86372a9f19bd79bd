"""Time for the router: a Clock protocol, the real clock, a virtual clock, and the timer heap.

The router never sleeps and never touches asyncio: every timer (offer expiry, preference timeout,
escalation, wrap-up, SLA breach) sits in one heap keyed by due time, and `Router.advance(now)`
processes whatever is due. The hub calls it from an asyncio task with the real clock; the simulator
calls it in virtual time, which is why thousands of simulated hours take seconds.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import time
from datetime import UTC, datetime
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds; only differences and ordering matter to the router."""
        ...


class SystemClock:
    """Wall-clock seconds since the epoch.

    Wall time rather than monotonic because the hub persists these figures and rebuilds the router
    from them after a restart; a monotonic reading means nothing to the next process. A clock stepped
    backwards only delays timers, it never fires them early twice.
    """

    def now(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that moves only when told to; the simulator and the tests drive it."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def set(self, t: float) -> None:
        if t < self._now:
            raise ValueError(f"virtual time cannot go back ({t} < {self._now})")
        self._now = t

    def advance(self, seconds: float) -> float:
        self.set(self._now + seconds)
        return self._now


def as_datetime(seconds: float) -> datetime:
    """A SystemClock reading as an aware UTC datetime (for persisting and publishing)."""
    return datetime.fromtimestamp(seconds, UTC)


class TimerKind(enum.IntEnum):
    OFFER_EXPIRY = 1
    PREFERENCE = 2
    ESCALATION = 3
    WRAP_UP = 4
    SLA = 5


# A timer is a plain tuple (due, seq, kind, task id, task ident, stamp) and is its own heap entry:
# (due, seq) order the heap and seq is unique. It names its task rather than holding it, and holds
# only str, int and float (the kind as a plain int, stamps are numbers or tuples of them), so the
# garbage collector untracks it the first time it looks and never traverses it again: with offers
# that expire after minutes there are tens of thousands of pending timers, and a finished task is
# freed at once instead of living on in its stale timers. A plain tuple because one is made per
# offer and per task: even a NamedTuple's __new__ costs several times more.
Timer = tuple[float, int, int, str, int, Any]


class TimerQueue:
    """A min-heap of timers. Cancelling is lazy: a handler checks the stamp and ignores stale timers,
    which keeps every schedule and every cancel O(log n)."""

    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, due: float, kind: TimerKind, task: Any, stamp: Any = None) -> None:
        """`task` needs `id` and `ident` (unique per Task object in a router): the handler fires the
        timer only if the live task with that id is still the same one."""
        heapq.heappush(self._heap, (due, next(self._seq), kind._value_, task.id, task.ident, stamp))

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> Timer | None:
        """The earliest timer due at or before `now`, removed; None when nothing is due."""
        heap = self._heap
        if heap and heap[0][0] <= now:
            return heapq.heappop(heap)
        return None
