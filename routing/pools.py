"""A pool: the tasks of one queue that share one skill requirement, and the agents who meet it.

Tasks are grouped by (queue, effective requirements) so that every agent in a pool is eligible for
every task in it. Then "best agent for this task" is the top of the pool's agent heap for the
task's channel, and "best task for this agent" is the best top among the pools the agent belongs
to: O(log n) per decision, with no scan of agents or tasks. Heaps use lazy deletion (entries carry
a version/token and are dropped when stale) and are compacted when stale entries outnumber live ones.

Building a pool scans the agents once; pools live as long as the router, and their number is set by
configuration (queues x distinct skill requirements), not by traffic.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection
from typing import Any

from .model import Agent, Task, TaskState
from .strategies import AgentEntry

PoolKey = tuple[str, frozenset[tuple[str, int]]]
_SLACK = 64
_WAITING = TaskState.WAITING


class Work:
    """Counts heap operations and entries examined: the tests' evidence of O(log n), never a timer."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


def task_entry(t: Task) -> tuple[Any, ...]:
    return (-t.priority, t.enqueued_at, t.seq, t.token, t)


def _task_live(entry: tuple[Any, ...], pool: Pool) -> bool:
    t = entry[4]
    return t.token == entry[3] and t.pool is pool and t.state is TaskState.WAITING


class Pool:
    def __init__(self, key: PoolKey, requirements: dict[str, int], entry: Callable[[Agent], AgentEntry],
                 work: Work) -> None:
        self.key = key
        self.queue = key[0]
        self.requirements = requirements
        self.entry = entry
        self.work = work
        self.members: dict[str, Agent] = {}
        self.agent_heaps: dict[str, list[AgentEntry]] = {}
        self.indexed: dict[str, dict[str, AgentEntry]] = {}  # channel -> agent id -> its live entry
        self.task_heaps: dict[str, list[tuple[Any, ...]]] = {}
        self.live: dict[str, int] = {}  # channel -> waiting tasks placed in this pool

    # --- agents ---
    #
    # Each channel's heap holds at most one *live* entry per agent: the one `indexed[channel]` names;
    # any other entry for that agent is superseded and dropped when it surfaces. A live entry whose
    # version is not the agent's is a lower bound: offers only raise an agent's key (idle since now,
    # a later offer, more budget in use), so an offer re-indexes nothing and the entry is re-keyed
    # only if it reaches the top. Changes that can lower a key or give room back (a release, a
    # presence or skills change) go through `refresh`, which pushes a fresh entry where needed.
    # So an offer costs no heap work across the agent's pools, and stale entries no longer pile up
    # in proportion to the agents.

    def add_member(self, agent: Agent) -> None:
        self.members[agent.id] = agent
        agent.pools.append(self)
        self.refresh(agent)

    def remove_member(self, agent: Agent) -> None:
        """Its entries are superseded at once (dropped when they surface)."""
        del self.members[agent.id]
        agent.pools.remove(self)
        for indexed in self.indexed.values():
            indexed.pop(agent.id, None)

    def refresh(self, agent: Agent, room: dict[str, bool] | None = None,
                fresh: dict[Any, AgentEntry] | None = None) -> None:
        """Re-index an agent after a change that may give it room or lower its key. `room` caches
        can_take per channel, `fresh` the new entry per strategy, across the agent's pools."""
        if room is None:
            room = {}
        entry = None
        for channel, heap in self.agent_heaps.items():
            fits = room.get(channel)
            if fits is None:
                fits = room[channel] = agent.can_take(channel)
            if not fits:
                continue  # a live entry, if any, is dropped when it surfaces
            indexed = self.indexed[channel]
            live = indexed.get(agent.id)
            if entry is None:
                entry = fresh.get(self.entry) if fresh is not None else None
                if entry is None:
                    entry = self.entry(agent)  # one immutable entry serves every heap of a strategy
                    if fresh is not None:
                        fresh[self.entry] = entry
            # Same version: the live entry is current. Same or higher key: it is a lower bound,
            # re-keyed if it surfaces.
            if live is not None and (live[-1] == entry[-1] or not entry < live):
                continue
            heapq.heappush(heap, entry)
            indexed[agent.id] = entry
            self.work.n += 1
            if len(heap) > 2 * len(self.members) + _SLACK:
                self._rebuild_agents(channel)

    def _rebuild_agents(self, channel: str) -> None:
        heap = [self.entry(a) for a in self.members.values() if a.can_take(channel)]
        heapq.heapify(heap)
        self.work.n += len(heap)
        self.agent_heaps[channel] = heap
        self.indexed[channel] = {e[-2]: e for e in heap}

    def best_agent(self, channel: str, exclude: Collection[str]) -> Agent | None:
        heap = self.agent_heaps.get(channel)
        if heap is None:
            self._rebuild_agents(channel)
            heap = self.agent_heaps[channel]
        indexed = self.indexed[channel]
        members = self.members
        work = self.work
        skipped: list[AgentEntry] = []
        found = None
        while heap:
            top = heap[0]
            work.n += 1
            if indexed.get(top[-2]) is not top:
                heapq.heappop(heap)  # superseded (or its agent left the pool)
                continue
            agent = members[top[-2]]
            if top[-1] != agent.version:
                # The agent changed since this entry was made: its key can only have grown, so
                # put it back at its real place, or drop it if it has no room on this channel now.
                if agent.can_take(channel):
                    entry = self.entry(agent)
                    heapq.heapreplace(heap, entry)  # pop and push in one sift
                    indexed[agent.id] = entry
                else:
                    heapq.heappop(heap)
                    del indexed[agent.id]
            elif agent.id in exclude:
                skipped.append(heapq.heappop(heap))
            else:
                found = agent
                break
        for e in skipped:
            heapq.heappush(heap, e)
        work.n += len(skipped)
        return found

    # --- tasks ---

    def push_task(self, task: Task) -> None:
        task.pool = self
        task.token += 1
        heap = self.task_heaps.get(task.channel)
        if heap is None:
            heap = self.task_heaps[task.channel] = []
        heapq.heappush(heap, task_entry(task))
        self.work.n += 1
        live = self.live[task.channel] = self.live.get(task.channel, 0) + 1
        if len(heap) > 2 * live + _SLACK:
            heap[:] = [e for e in heap if _task_live(e, self)]
            heapq.heapify(heap)
            self.work.n += len(heap)

    def discard_task(self, task: Task) -> None:
        """The task leaves the waiting line (offered, abandoned, moved): its entry goes stale."""
        task.pool = None
        task.token += 1
        self.live[task.channel] -= 1

    def best_task(self, channel: str, agent_id: str) -> Task | None:
        entry = self.best_entry(channel, agent_id)
        return entry[4] if entry is not None else None

    def best_entry(self, channel: str, agent_id: str) -> tuple[Any, ...] | None:
        """The heap entry of the best live task on `channel` this agent has not declined."""
        heap = self.task_heaps.get(channel)
        if not heap:
            return None
        work = self.work
        top = heap[0]
        t = top[4]
        # The common case, inlined: the top is live and not declined by this agent.
        if t.token == top[3] and t.pool is self and t.state is _WAITING and agent_id not in t.declined_by:
            work.n += 1
            return top
        skipped: list[tuple[Any, ...]] = []
        found = None
        while heap:
            top = heap[0]
            work.n += 1
            if not _task_live(top, self):
                heapq.heappop(heap)
            elif agent_id in top[4].declined_by:
                skipped.append(heapq.heappop(heap))
            else:
                found = top
                break
        for e in skipped:
            heapq.heappush(heap, e)
        work.n += len(skipped)
        return found

    def waiting_tasks(self) -> list[Task]:
        return [e[4] for heap in self.task_heaps.values() for e in heap if _task_live(e, self)]
