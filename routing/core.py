"""The waiting lines and the matching: where a task waits, who it is offered to, and timers.

Invariant kept after every operation: no waiting task and available agent remain that could be
matched (same pool, room on the channel, not declined). So a new task only needs the best agent
of its pool, and an agent who frees capacity only needs the best task among its pools: both are
heap tops, O(log n). `routing.router.Router` adds the public operations on top of this.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

from .clock import Clock, SystemClock, TimerKind, TimerQueue
from .errors import InvalidTransition, UnknownAgent, UnknownQueue, UnknownTask
from .events import AgentEvent, AgentEventKind, RoutingEvent, TaskEvent, TaskEventKind
from .model import Agent, Presence, Queue, RouterConfig, Task, TaskState
from .pools import Pool, PoolKey, Work, task_entry
from .stats import QueueWindow
from .strategies import ENTRY

# Enum attribute lookups cost ~0.1 us each in 3.11; the hot paths use these module names.
_WAITING = TaskState.WAITING
_OFFERED = TaskState.OFFERED
_AVAILABLE = Presence.AVAILABLE
_OFFLINE = Presence.OFFLINE
_EV_OFFERED = TaskEventKind.OFFERED
_T_OFFER_EXPIRY = TimerKind.OFFER_EXPIRY
_END_KIND = {s: TaskEventKind(s.value) for s in (TaskState.COMPLETED, TaskState.ABANDONED, TaskState.CANCELLED)}


class RouterCore:
    def __init__(self, clock: Clock | None = None, config: RouterConfig | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.config = config or RouterConfig()
        self.work = Work()
        self._queues: dict[str, Queue] = {}
        self._agents: dict[str, Agent] = {}
        self._tasks: dict[str, Task] = {}  # live tasks only: terminal ones are the hub's to keep
        self._pools: dict[PoolKey, Pool] = {}
        self._base_pools: dict[str, Pool] = {}
        self._counts: dict[str, dict[TaskState, int]] = {}
        # For the longest-wait figure: (enqueued_at, seq, task id, ident), no object, so untracked by gc.
        self._oldest: dict[str, list[tuple[float, int, str, int]]] = {}
        self._windows: dict[str, QueueWindow] = {}
        self._timers = TimerQueue()
        self._events: list[RoutingEvent] = []
        self._seq = itertools.count(1)
        self._offer_seq = itertools.count(1)
        self._uniq = itertools.count(1)

    # --- bookkeeping ---

    def _emit(self, kind: TaskEventKind, task: Task, at: float, agent_id: str | None = None,
              **details: Any) -> None:
        self._events.append(TaskEvent(kind, task.id, at, task.state, task.queue, task.channel,
                                      agent_id if agent_id is not None else task.agent_id, details))

    def _agent_event(self, kind: AgentEventKind, agent: Agent, at: float, **details: Any) -> None:
        self._events.append(AgentEvent(kind, agent.id, at, agent.presence, details))

    def _state(self, task: Task, new: TaskState) -> None:
        """Change state and the per-queue counts; terminal states are not counted."""
        counts = self._counts[task.queue]
        counts[task.state] -= 1
        if new in counts:
            counts[new] += 1
        task.state = new

    def _move_queue(self, task: Task, queue: str, now: float) -> None:
        self._counts[task.queue][task.state] -= 1
        self._counts[queue][task.state] += 1
        task.queue = queue
        task.epoch += 1
        task.escalation_level = 0
        task.skill_overrides = {}
        task.queue_entered_at = now

    def _agent_changed(self, agent: Agent) -> None:
        """Re-index the agent after a change that may give it room or lower its key (see pools.py):
        a fresh entry goes where it has room and no live entry, or a live entry ranks it too low."""
        agent.version += 1
        # An agent who can take nothing (away, or its budget spent, e.g. on a call) needs no entries.
        if agent.presence is not _AVAILABLE or agent.used >= agent.capacity.budget:
            return
        room: dict[str, bool] = {}
        fresh: dict[Any, Any] = {}
        for pool in agent.pools:
            pool.refresh(agent, room, fresh)

    def _reserve(self, agent: Agent, task: Task) -> None:
        agent.used += agent.capacity.cost(task.channel)
        agent.tasks[task.id] = task.channel
        agent.counts[task.channel] = agent.counts.get(task.channel, 0) + 1

    def _release(self, agent: Agent, task: Task) -> None:
        channel = agent.tasks.pop(task.id)
        agent.used -= agent.capacity.cost(channel)
        agent.counts[channel] -= 1

    # --- pools ---

    def _new_pool(self, key: PoolKey, requirements: dict[str, int], queue: Queue) -> Pool:
        # The one place that visits every agent: once per (queue, requirement set), never per decision.
        pool = Pool(key, requirements, ENTRY[queue.strategy], self.work)
        self._pools[key] = pool
        for agent in self._agents.values():
            if agent.qualifies(requirements):
                pool.add_member(agent)
        return pool

    def _pool_for(self, task: Task) -> Pool:
        if not task.required_skills and not task.skill_overrides:
            return self._base_pools[task.queue]
        queue = self._queues[task.queue]
        req = task.requirements(queue)
        key = (queue.name, frozenset(req.items()))
        return self._pools.get(key) or self._new_pool(key, req, queue)

    def _join_pools(self, agent: Agent) -> None:
        for pool in self._pools.values():
            if agent.qualifies(pool.requirements):
                pool.add_member(agent)

    # --- the waiting line ---

    def _place(self, task: Task, now: float) -> None:
        """Put a WAITING task in line, parked for its preferred agent while the preference lasts or
        in its pool otherwise, and offer it at once if someone can take it."""
        oldest = self._oldest[task.queue]
        heapq.heappush(oldest, (task.enqueued_at, task.seq, task.id, task.ident))
        if len(oldest) > 2 * self._counts[task.queue][_WAITING] + 64:
            oldest[:] = [e for e in oldest if self._waiting_in(e, task.queue)]
            heapq.heapify(oldest)
        pref = task.preferred_agent
        if (pref is not None and task.preferred_until is not None and now < task.preferred_until
                and pref not in task.declined_by):
            agent = self._agents.get(pref)
            # Waiting for someone who is logged out helps nobody: such a task goes to the pool now.
            # Skills are not checked: the relationship (owner, last agent) is the reason to wait.
            if agent is not None and agent.presence is not _OFFLINE:
                task.parked_for = pref
                task.token += 1
                if not agent.parked:
                    agent.parked = []
                heapq.heappush(agent.parked, task_entry(task))
                self._timers.schedule(task.preferred_until, TimerKind.PREFERENCE, task, task.token)
                if agent.can_take(task.channel):
                    self._offer(task, agent, now)
                return
        pool = self._pool_for(task)
        pool.push_task(task)
        agent = pool.best_agent(task.channel, task.declined_by)
        if agent is not None:
            self._offer(task, agent, now)

    def _waiting_in(self, entry: tuple[float, int, str, int], queue: str) -> bool:
        t = self._tasks.get(entry[2])
        return t is not None and t.ident == entry[3] and t.state is _WAITING and t.queue == queue

    def _unplace(self, task: Task) -> None:
        if task.parked_for is not None:
            task.parked_for = None
            task.token += 1
        elif task.pool is not None:
            task.pool.discard_task(task)

    def _offer(self, task: Task, agent: Agent, now: float) -> None:
        self._unplace(task)
        self._state(task, _OFFERED)
        task.agent_id = agent.id
        task.offered_at = now
        task.offer_seq += 1
        self._reserve(agent, task)
        backwards = agent.idle_since is not None and now < agent.idle_since
        agent.idle_since = now
        agent.last_offer_seq = next(self._offer_seq)
        if backwards:  # a wall clock stepped back lowered the agent's key: re-index it now
            self._agent_changed(agent)
        else:  # an offer only raises the agent's key and takes room: its entries are lower bounds
            agent.version += 1
        expires = now + self.config.offer_timeout_s
        self._timers.schedule(expires, _T_OFFER_EXPIRY, task, task.offer_seq)
        self._emit(_EV_OFFERED, task, now, expires_at=expires)

    def _match_agent(self, agent: Agent, now: float) -> bool:
        """Offer the agent the best tasks it has room for; True if it got any."""
        offered = False
        budget = agent.capacity.budget
        # A spent budget (a call, three chats) takes nothing: skip the search rather than run it empty.
        while agent.presence is _AVAILABLE and agent.used < budget:
            task = self._best_task_for(agent)
            if task is None:
                break
            self._offer(task, agent, now)
            offered = True
        return offered

    def _take_work(self, agent: Agent, now: float) -> None:
        """Capacity came back. Match first, re-index after, so an agent who goes straight to its
        next task is indexed once, with the room that task leaves it."""
        self._match_agent(agent, now)
        self._agent_changed(agent)

    def _best_task_for(self, agent: Agent) -> Task | None:
        # Tasks waiting for this agent by name come first: that is what sticky routing promises.
        if agent.parked:
            task = self._best_parked(agent)
            if task is not None:
                return task
        # Entries are (-priority, enqueued_at, seq, ...) and seq is unique, so comparing whole entries
        # is the waiting-line order and never reaches the fields after seq.
        best: tuple[Any, ...] | None = None
        room: dict[str, bool] = {}
        agent_id = agent.id
        work = self.work
        for pool in agent.pools:
            heaps = pool.task_heaps
            for channel, live in pool.live.items():
                if not live:
                    continue
                fits = room.get(channel)
                if fits is None:
                    fits = room[channel] = agent.can_take(channel)
                if not fits:
                    continue
                # Pool.best_entry's common case, inlined: the top is live and not declined by the agent.
                top = heaps[channel][0]
                t = top[4]
                if t.token == top[3] and t.pool is pool and t.state is _WAITING and agent_id not in t.declined_by:
                    work.n += 1
                    entry = top
                else:
                    entry = pool.best_entry(channel, agent_id)
                if entry is not None and (best is None or entry < best):
                    best = entry
        return best[4] if best is not None else None

    def _best_parked(self, agent: Agent) -> Task | None:
        heap = agent.parked
        skipped = []
        found = None
        while heap:
            entry = heap[0]
            t = entry[4]
            self.work.n += 1
            if t.token != entry[3] or t.parked_for != agent.id or t.state is not _WAITING:
                heapq.heappop(heap)
            elif agent.can_take(t.channel):
                found = t
                break
            else:
                skipped.append(heapq.heappop(heap))
        for entry in skipped:
            heapq.heappush(heap, entry)
        return found

    def _release_parked(self, agent: Agent, now: float) -> None:
        """The agent logged out: tasks waiting for it by name go to their pools."""
        entries, agent.parked = agent.parked, ()
        for entry in entries:
            t = entry[4]
            if t.token == entry[3] and t.parked_for == agent.id and t.state is _WAITING:
                self._unplace(t)
                self._place(t, now)

    def _back_in_line(self, task: Task, agent: Agent) -> None:
        """Undo an offer: the agent's capacity comes back, the task keeps its enqueue time."""
        self._release(agent, task)
        self._state(task, _WAITING)
        task.agent_id = task.offered_at = None

    def _set_presence(self, agent: Agent, presence: Presence, now: float, reason: str) -> None:
        previous = agent.presence
        if previous is presence:
            return
        agent.presence = presence
        self._agent_event(AgentEventKind.PRESENCE_CHANGED, agent, now, previous=previous.value, reason=reason)
        if presence is _AVAILABLE:
            agent.missed_in_row = 0
            agent.idle_since = now
            self._take_work(agent, now)
            return
        self._agent_changed(agent)
        if presence is Presence.OFFLINE:
            for task_id in list(agent.tasks):
                task = self._tasks[task_id]
                if task.state is _OFFERED:
                    self._back_in_line(task, agent)
                    self._emit(TaskEventKind.OFFER_EXPIRED, task, now, agent_id=agent.id,
                               reason="agent_offline")
                    self._agent_changed(agent)
                    self._place(task, now)
            self._release_parked(agent, now)

    def _finish(self, task: Task, state: TaskState, now: float, **details: Any) -> None:
        """Move a task to a terminal state, free what it held and let its agent take more work."""
        agent = self._agents.get(task.agent_id) if task.agent_id is not None else None
        agent_id = task.agent_id
        if agent is not None:
            self._release(agent, task)
        elif task.state is _WAITING:
            self._unplace(task)
        self._state(task, state)
        task.ended_at = now
        del self._tasks[task.id]
        self._emit(_END_KIND[state], task, now, agent_id=agent_id, **details)
        if agent is not None:
            agent.idle_since = now
            self._take_work(agent, now)

    # --- lookups ---

    def _wrapup_timeout(self, task: Task) -> float | None:
        return self._queues[task.queue].wrapup_s or self.config.wrapup_timeout_s

    def _preference_s(self, task: Task) -> float:
        if task.preference_timeout_s is None:
            return self.config.preference_timeout_s
        return task.preference_timeout_s

    def _queue(self, name: str) -> Queue:
        try:
            return self._queues[name]
        except KeyError:
            raise UnknownQueue(f"no queue {name!r}") from None

    def _agent(self, agent_id: str | None) -> Agent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise UnknownAgent(f"no agent {agent_id!r}") from None

    def _task(self, task_id: str, *states: TaskState) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise UnknownTask(f"no live task {task_id!r}")
        if states and task.state not in states:
            wanted = " or ".join(s.value for s in states)
            raise InvalidTransition(f"task {task_id!r} is {task.state.value}, not {wanted}")
        return task

    def _offered_to(self, task_id: str, agent_id: str) -> Task:
        task = self._tasks.get(task_id)
        if task is None or task.state is not _OFFERED:
            task = self._task(task_id, _OFFERED)  # raises, naming what is wrong
        if task.agent_id != agent_id:
            raise InvalidTransition(f"task {task_id!r} is not offered to agent {agent_id!r}")
        return task
