"""The skills-based router's public operations (DESIGN section 7).

Pure and in memory: no I/O, no asyncio. Each operation first applies the timers that are due by
`clock.now()`, so an accept arriving after its offer expired is refused, then changes state and
records events for `drain_events()`. The hub persists those events, pushes offers to agents and
calls `tick()` from an asyncio task at `next_due()`; the simulator does the same in virtual time.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from .clock import TimerKind
from .errors import DuplicateTask, InvalidTransition, QueueInUse, RoutingError
from .events import AgentEventKind, RoutingEvent, TaskEventKind
from .model import DEFAULT_CAPACITY, NO_ONE, Agent, Capacity, Presence, Queue, Task, TaskState
from .restore import RestorableCore
from .stats import AgentState, QueueStats, QueueWindow

_LIVE_STATES = (TaskState.WAITING, TaskState.OFFERED, TaskState.ASSIGNED, TaskState.WRAP_UP)
# Enum attribute lookups cost ~0.1 us each in 3.11; the per-decision operations use these names.
_WAITING, _OFFERED, _ASSIGNED, _WRAP_UP = _LIVE_STATES
_COMPLETED = TaskState.COMPLETED
_EV_CREATED = TaskEventKind.CREATED
_EV_ASSIGNED = TaskEventKind.ASSIGNED


class Router(RestorableCore):
    # --- time and events ---

    def _sync(self) -> float:
        now = self.clock.now()
        heap = self._timers._heap
        if heap and heap[0][0] <= now:  # checked here: nothing is due on most calls
            self._run_timers(now)
        return now

    def advance(self, now: float | None = None) -> int:
        """Apply every timer due at or before `now` (default: the clock); returns how many applied."""
        return self._run_timers(self.clock.now() if now is None else now)

    def tick(self) -> int:
        return self.advance()

    def next_due(self) -> float | None:
        """When the earliest timer is due (it may turn out stale); the hub sleeps until then."""
        return self._timers.next_due()

    def drain_events(self) -> list[RoutingEvent]:
        events, self._events = self._events, []
        return events

    # --- queues ---

    def add_queue(self, queue: Queue) -> None:
        if queue.name in self._queues:
            raise RoutingError(f"queue {queue.name!r} exists; use update_queue")
        self._queues[queue.name] = queue
        self._counts[queue.name] = {s: 0 for s in _LIVE_STATES}
        self._oldest[queue.name] = []
        self._windows[queue.name] = QueueWindow(self.config.stats_window_s)
        req = {s: lv for s, lv in queue.required_skills.items() if lv > 0}
        key = (queue.name, frozenset(req.items()))
        self._base_pools[queue.name] = self._pools.get(key) or self._new_pool(key, req, queue)

    def update_queue(self, queue: Queue) -> None:
        """Replace a queue's configuration. An admin operation, O(tasks in the queue + agents): its
        pools are rebuilt and its waiting tasks re-placed in their order; timers are rescheduled."""
        now = self._sync()
        old = self._queue(queue.name)
        live = sorted((t for t in self._tasks.values() if t.queue == queue.name), key=Task.order)
        waiting = [t for t in live if t.state is TaskState.WAITING]
        for t in waiting:
            self._unplace(t)
        self._queues[queue.name] = queue
        if old.required_skills != queue.required_skills or old.strategy != queue.strategy:
            self._drop_pools(queue.name)
            req = {s: lv for s, lv in queue.required_skills.items() if lv > 0}
            key = (queue.name, frozenset(req.items()))
            self._base_pools[queue.name] = self._new_pool(key, req, queue)
        for t in live:
            if t.state in (TaskState.WAITING, TaskState.OFFERED):
                t.epoch += 1
                t.escalation_level = min(t.escalation_level, len(queue.escalation))
                self._schedule_queue_timers(t)
        for t in waiting:
            self._place(t, now)

    def remove_queue(self, name: str) -> None:
        self._queue(name)
        if any(self._counts[name].values()):
            raise QueueInUse(f"queue {name!r} still has live tasks")
        self._drop_pools(name)
        for table in (self._queues, self._counts, self._oldest, self._windows, self._base_pools):
            del table[name]

    def _drop_pools(self, name: str) -> None:
        for key in [k for k in self._pools if k[0] == name]:
            pool = self._pools.pop(key)
            for agent in list(pool.members.values()):
                pool.remove_member(agent)

    def queues(self) -> list[Queue]:
        return list(self._queues.values())

    # --- agents ---

    def set_agent(self, agent_id: str, *, skills: Mapping[str, int] | None = None,
                  capacity: Capacity | None = None) -> Agent:
        """Register an agent (offline) or change its skills/capacity; its pools follow its skills.
        A lower capacity applies to new offers: tasks the agent already holds stay with it."""
        now = self._sync()
        agent = self._agents.get(agent_id)
        if agent is None:
            # The shared default: one Capacity object for most agents keeps 10,000 of them in cache.
            agent = Agent(id=agent_id, skills=dict(skills or {}), capacity=capacity or DEFAULT_CAPACITY)
            self._agents[agent_id] = agent
            self._join_pools(agent)
            self._agent_event(AgentEventKind.REGISTERED, agent, now)
            return agent
        if skills is not None:
            agent.skills = dict(skills)
            for pool in list(agent.pools):
                pool.remove_member(agent)
            self._join_pools(agent)
        if capacity is not None:
            agent.capacity = capacity
            agent.used = sum(capacity.cost(ch) for ch in agent.tasks.values())
        self._agent_changed(agent)
        self._agent_event(AgentEventKind.UPDATED, agent, now)
        self._match_agent(agent, now)
        return agent

    def login(self, agent_id: str, *, skills: Mapping[str, int] | None = None,
              capacity: Capacity | None = None) -> Agent:
        """Register or update the agent, then make it available."""
        agent = self.set_agent(agent_id, skills=skills, capacity=capacity)
        self.set_presence(agent_id, Presence.AVAILABLE, reason="login")
        return agent

    def logout(self, agent_id: str) -> Agent:
        return self.set_presence(agent_id, Presence.OFFLINE, reason="logout")

    def set_presence(self, agent_id: str, presence: Presence | str, reason: str = "requested") -> Agent:
        """Going offline withdraws the agent's pending offers and releases tasks waiting for it by
        name; tasks it has accepted stay with it. Becoming available takes work at once."""
        now = self._sync()
        agent = self._agent(agent_id)
        self._set_presence(agent, Presence(presence), now, reason)
        return agent

    # --- tasks ---

    def submit(self, task: Task) -> Task:
        now = self._sync()
        if task.id in self._tasks:
            raise DuplicateTask(f"task {task.id!r} is already live")
        if task.queue not in self._queues:
            self._queue(task.queue)  # raises UnknownQueue
        if task.state is not _WAITING or task.agent_id is not None:
            raise InvalidTransition("a submitted task must be waiting and unassigned")
        if not task.channel:
            raise RoutingError("a task needs a channel")
        task.created_at = now if task.created_at is None else task.created_at
        task.enqueued_at = now if task.enqueued_at is None else task.enqueued_at
        task.queue_entered_at = task.enqueued_at if task.queue_entered_at is None else task.queue_entered_at
        if task.preferred_agent is not None and task.preferred_until is None:
            task.preferred_until = task.enqueued_at + self._preference_s(task)
        task.seq = next(self._seq)
        task.ident = next(self._uniq)
        self._tasks[task.id] = task
        self._counts[task.queue][_WAITING] += 1
        self._emit(_EV_CREATED, task, now, priority=task.priority)
        self._schedule_queue_timers(task)
        self._place(task, now)
        return task

    def accept(self, task_id: str, agent_id: str) -> Task:
        now = self._sync()
        task = self._offered_to(task_id, agent_id)
        self._state(task, _ASSIGNED)
        self._agents[agent_id].missed_in_row = 0
        if task.answered_at is None:
            task.answered_at = now
            wait = now - task.enqueued_at
            self._windows[task.queue].answer(now, wait, wait <= self._queues[task.queue].sla_s)
        self._emit(_EV_ASSIGNED, task, now)
        return task

    def decline(self, task_id: str, agent_id: str, reason: str | None = None) -> Task:
        """The task goes back to its place and is never offered to this agent again (a supervisor
        can still transfer it to them)."""
        now = self._sync()
        task = self._offered_to(task_id, agent_id)
        agent = self._agents[agent_id]
        self._back_in_line(task, agent)
        task.declined_by |= {agent_id}
        agent.missed_in_row = 0
        self._emit(TaskEventKind.DECLINED, task, now, agent_id=agent_id, reason=reason)
        self._agent_changed(agent)
        self._place(task, now)
        self._match_agent(agent, now)
        return task

    def transfer(self, task_id: str, *, queue: str | None = None, agent_id: str | None = None) -> Task:
        """Send a waiting, offered or assigned task to another queue and/or to an agent by name (who
        gets it like a preferred agent: first, until the preference timeout). An answered task
        starts a new wait; one still waiting keeps its place."""
        now = self._sync()
        if queue is None and agent_id is None:
            raise RoutingError("a transfer needs a queue or an agent")
        task = self._task(task_id)
        if task.state is TaskState.WRAP_UP:
            raise InvalidTransition(f"task {task_id!r} is in wrap-up; complete it instead")
        if queue is not None:
            self._queue(queue)
        if agent_id is not None:
            self._agent(agent_id)
        from_queue, from_agent = task.queue, task.agent_id
        agent = self._agents[from_agent] if from_agent is not None else None
        if agent is not None:
            self._release(agent, task)
            self._state(task, TaskState.WAITING)
            task.agent_id = task.offered_at = None
        else:
            self._unplace(task)
        task.declined_by = (frozenset((from_agent,)) if from_agent is not None and from_agent != agent_id
                            else NO_ONE)
        moved = queue is not None and queue != task.queue
        if moved:
            self._move_queue(task, queue, now)
        if task.answered_at is not None:
            task.enqueued_at, task.seq = now, next(self._seq)
        if agent_id is not None:
            task.preferred_agent = agent_id
            task.preferred_until = now + self._preference_s(task)
        self._emit(TaskEventKind.TRANSFERRED, task, now, agent_id=from_agent, from_queue=from_queue,
                   to_queue=task.queue, to_agent=agent_id)
        if moved:
            self._schedule_queue_timers(task)
        self._place(task, now)
        if agent is not None:
            agent.idle_since = now
            self._take_work(agent, now)
        return task

    def wrapup(self, task_id: str, disposition: str | None = None, note: str | None = None) -> Task:
        """The conversation ended; the task keeps its capacity until completed (or the wrap-up timer)."""
        now = self._sync()
        task = self._task(task_id, TaskState.ASSIGNED)
        task.disposition, task.note = disposition, note
        self._state(task, TaskState.WRAP_UP)
        task.wrapup_at = now
        timeout = self._wrapup_timeout(task)
        if timeout is not None:
            self._timers.schedule(now + timeout, TimerKind.WRAP_UP, task, now)
        self._emit(TaskEventKind.WRAP_UP, task, now, disposition=disposition)
        return task

    def complete(self, task_id: str, disposition: str | None = None, note: str | None = None) -> Task:
        now = self._sync()
        task = self._task(task_id, _ASSIGNED, _WRAP_UP)
        if disposition is not None:
            task.disposition = disposition
        if note is not None:
            task.note = note
        self._finish(task, _COMPLETED, now, disposition=task.disposition)
        return task

    def abandon(self, task_id: str) -> Task:
        """The customer left (hung up, closed the chat) before an agent accepted."""
        now = self._sync()
        task = self._task(task_id, TaskState.WAITING, TaskState.OFFERED)
        if task.answered_at is None:
            self._windows[task.queue].abandon(now)
        self._finish(task, TaskState.ABANDONED, now, waited_s=now - task.enqueued_at)
        return task

    def cancel(self, task_id: str, reason: str | None = None) -> Task:
        now = self._sync()
        task = self._task(task_id)
        self._finish(task, TaskState.CANCELLED, now, reason=reason)
        return task

    # --- live changes (rules, supervisors) ---

    def set_priority(self, task_id: str, priority: int, reason: str | None = None) -> Task:
        """Change a waiting or offered task's priority. A waiting task moves to its new place in line
        (it keeps its enqueue time); an offered one takes it back there if the offer lapses. O(log n)."""
        now = self._sync()
        task = self._task(task_id, _WAITING, _OFFERED)
        previous = task.priority
        if priority == previous:
            return task
        waiting = task.state is _WAITING
        if waiting:
            self._unplace(task)
        task.priority = priority
        self._emit(TaskEventKind.REPRIORITIZED, task, now, previous=previous, priority=priority, reason=reason)
        if waiting:
            self._place(task, now)
        return task

    def escalate(self, task_id: str, *, skills: Mapping[str, int] | None = None, replace_skills: bool = False,
                 queue: str | None = None, reason: str | None = None) -> Task:
        """Escalate a waiting or offered task now, as a queue's escalation step would: `queue` moves
        it (it keeps its place in line), `skills` sets required levels (0 drops a skill) or, with
        `replace_skills`, becomes its whole requirement (the queue's included). A waiting task is
        re-indexed and offered at once if an agent now qualifies. O(log n), plus one scan of the
        agents the first time a (queue, requirements) pair is seen, as for any new pool."""
        now = self._sync()
        if skills is None and queue is None:
            raise RoutingError("an escalation needs skills or a queue")
        task = self._task(task_id, _WAITING, _OFFERED)
        if queue is not None:
            self._queue(queue)
        waiting = task.state is _WAITING
        if waiting:
            self._unplace(task)
        details: dict[str, object] = {"reason": reason}
        moved = queue is not None and queue != task.queue
        if moved:
            details["from_queue"] = task.queue
            self._move_queue(task, queue, now)
        if skills is not None:
            levels = dict(skills)
            if replace_skills:
                levels = {**dict.fromkeys(task.requirements(self._queues[task.queue]), 0), **levels}
            task.skill_overrides.update(levels)
            details.update(skills=dict(skills), replace_skills=replace_skills)
        self._emit(TaskEventKind.ESCALATED, task, now, **details)
        if moved:
            self._schedule_queue_timers(task)
        if waiting:
            self._place(task, now)
        return task

    # --- reading ---

    def task(self, task_id: str) -> Task:
        return self._task(task_id)

    def agent(self, agent_id: str) -> Agent:
        return self._agent(agent_id)

    def tasks(self) -> list[Task]:
        return list(self._tasks.values())

    def agents(self) -> list[Agent]:
        return list(self._agents.values())

    def agent_tasks(self, agent_id: str) -> list[Task]:
        """The tasks an agent holds (offered, assigned, in wrap-up): what its console shows."""
        return [self._tasks[t] for t in self._agent(agent_id).tasks]

    def queue_stats(self, name: str | None = None) -> list[QueueStats]:
        now = self._sync()
        return [self._queue_stats(q, now) for q in ([name] if name is not None else self._queues)]

    def _queue_stats(self, name: str, now: float) -> QueueStats:
        queue = self._queue(name)
        oldest = self._oldest[name]
        while oldest and not self._waiting_in(oldest[0], name):
            heapq.heappop(oldest)
        window = self._windows[name]
        window.prune(now)
        decided = window.answered + window.abandoned
        members = self._base_pools[name].members.values()
        return QueueStats(
            queue=name, waiting=self._counts[name][TaskState.WAITING],
            offered=self._counts[name][TaskState.OFFERED],
            longest_wait_s=now - oldest[0][0] if oldest else 0.0, sla_s=queue.sla_s, window_s=window.window_s,
            answered=window.answered, answered_within_sla=window.within, abandoned=window.abandoned,
            service_level=window.within / decided if decided else None,
            abandon_rate=window.abandoned / decided if decided else None,
            asa_s=window.wait_sum / window.answered if window.answered else None,
            agents=len(members), agents_available=sum(a.presence is Presence.AVAILABLE for a in members),
        )

    def agent_states(self) -> list[AgentState]:
        return [
            AgentState(a.id, a.presence.value, a.idle_since, a.missed_in_row, a.used, a.capacity.budget,
                       {t: self._tasks[t].state.value for t in a.tasks})
            for a in self._agents.values()
        ]
