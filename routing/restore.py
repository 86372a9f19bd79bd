"""Persistence for the router: a snapshot as plain data, and the rebuild from persisted rows that the
hub runs on start (DESIGN section 7: the router rebuilds from the DB)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .clock import TimerKind
from .errors import DuplicateTask, RoutingError, UnknownAgent
from .escalation import TimedCore
from .model import Agent, Presence, Task, TaskState

_LIVE_STATES = (TaskState.WAITING, TaskState.OFFERED, TaskState.ASSIGNED, TaskState.WRAP_UP)


def _line_order(t: Task) -> tuple[float, int]:
    return (t.enqueued_at or 0.0, t.seq)


class RestorableCore(TimedCore):
    def restore_window(self, queue: str, answered: Iterable[tuple[float, float]], abandoned: Iterable[float]) -> None:
        """Seed a queue's statistics window after a restart: `answered` as (answered at, waited s),
        `abandoned` as times. Records older than the window are dropped; an unknown queue is ignored."""
        window = self._windows.get(queue)
        if window is None:
            return
        sla = self._queues[queue].sla_s
        records = sorted([(at, wait) for at, wait in answered] + [(at, None) for at in abandoned],
                         key=lambda r: r[0])
        for at, wait in records:
            if wait is None:
                window.abandon(at)
            else:
                window.answer(at, wait, wait <= sla)
        window.prune(self.clock.now())

    # --- persistence ---

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Plain data: queues, agents and live tasks in waiting-line order."""
        return {
            "queues": [q.model_dump(mode="json") for q in self._queues.values()],
            "agents": [a.to_dict() for a in self._agents.values()],
            "tasks": [t.to_dict() for t in sorted(self._tasks.values(), key=_line_order)],
        }

    def restore(self, tasks: Iterable[Task | Mapping[str, Any]],
                agents: Iterable[Agent | Mapping[str, Any]]) -> None:
        """Rebuild from persisted rows into a router that has its queues but no agents or tasks.

        Held tasks (assigned, wrap-up) consume their agents' capacity again; an offer that was
        pending when the process stopped is void (its agent's console is gone), so an offered task
        goes back to its place. Waiting tasks keep their order; timers are rescheduled from the
        stored times, so one overdue fires on the next tick. Terminal tasks are ignored.
        """
        if self._tasks or self._agents:
            raise RoutingError("restore needs a router without agents or tasks")
        now = self.clock.now()
        new_agents = [Agent.from_dict(dict(a)) if isinstance(a, Mapping) else a for a in agents]
        restored = [Task.from_dict(dict(t)) if isinstance(t, Mapping) else t for t in tasks]
        restored = sorted((t for t in restored if t.state in _LIVE_STATES), key=_line_order)
        # Check everything before changing anything, so a bad row leaves the router empty.
        agent_ids = {a.id for a in new_agents}
        for task in restored:
            self._queue(task.queue)
            if task.state in (TaskState.ASSIGNED, TaskState.WRAP_UP) and task.agent_id not in agent_ids:
                raise UnknownAgent(f"task {task.id!r} is held by unknown agent {task.agent_id!r}")
        if len({t.id for t in restored}) != len(restored):
            raise DuplicateTask("a task id appears twice")
        for agent in new_agents:
            if agent.presence is Presence.AVAILABLE and agent.idle_since is None:
                agent.idle_since = now
            self._agents[agent.id] = agent
            self._join_pools(agent)
        waiting = []
        for task in restored:
            task.seq = next(self._seq)
            task.ident = next(self._uniq)
            self._tasks[task.id] = task
            if task.state in (TaskState.ASSIGNED, TaskState.WRAP_UP):
                self._reserve(self._agents[task.agent_id], task)
                self._counts[task.queue][task.state] += 1
                timeout = self._wrapup_timeout(task)
                if task.state is TaskState.WRAP_UP and timeout is not None and task.wrapup_at is not None:
                    self._timers.schedule(task.wrapup_at + timeout, TimerKind.WRAP_UP, task, task.wrapup_at)
            else:
                task.state, task.agent_id, task.offered_at = TaskState.WAITING, None, None
                self._counts[task.queue][TaskState.WAITING] += 1
                self._schedule_queue_timers(task)
                waiting.append(task)
        for agent in self._agents.values():
            self._agent_changed(agent)
        for task in waiting:
            self._place(task, now)
