"""Time for the router's tasks: timers as they fall due (offer expiry, preference, escalation steps,
wrap-up, SLA breach), and the escalation steps themselves.

Every timer is checked against a stamp when it fires (routing.clock), so a task that moved on
simply ignores it. `routing.router.Router` adds the public operations on top of this.
"""

from __future__ import annotations

from typing import Any

from .clock import Timer, TimerKind
from .core import RouterCore
from .events import TaskEventKind
from .model import Presence, Task, TaskState

_WAITING = TaskState.WAITING
_OFFERED = TaskState.OFFERED
_AVAILABLE = Presence.AVAILABLE
_T_SLA = TimerKind.SLA


class TimedCore(RouterCore):
    def _schedule_queue_timers(self, task: Task, sla: bool = True) -> None:
        queue = self._queues[task.queue]
        if sla and not task.sla_breached and task.answered_at is None:
            self._timers.schedule(task.enqueued_at + queue.sla_s, _T_SLA, task, task.epoch)
        if task.escalation_level < len(queue.escalation):
            step = queue.escalation[task.escalation_level]
            self._timers.schedule(task.queue_entered_at + step.after_s, TimerKind.ESCALATION, task,
                                  (task.epoch, task.escalation_level))

    def _run_timers(self, now: float) -> int:
        fired = 0
        tasks = self._tasks
        while (timer := self._timers.pop_due(now)) is not None:
            task = tasks.get(timer[3])
            if task is not None and task.ident == timer[4]:
                fired += self._fire(timer, task)
        return fired

    def _fire(self, timer: Timer, task: Task) -> int:
        """Apply a due timer if the task still shows the stamp it was scheduled with; 1 if applied."""
        at, _, kind, _, _, stamp = timer
        match kind:
            case TimerKind.OFFER_EXPIRY if task.state is _OFFERED and task.offer_seq == stamp:
                self._expire_offer(task, at)
            case TimerKind.PREFERENCE if task.state is _WAITING and task.parked_for and task.token == stamp:
                self._unplace(task)
                self._emit(TaskEventKind.PREFERENCE_EXPIRED, task, at, preferred_agent=task.preferred_agent)
                self._place(task, at)
            case TimerKind.ESCALATION if (task.state in (_WAITING, _OFFERED)
                                          and (task.epoch, task.escalation_level) == stamp):
                self._escalate(task, at)
            case TimerKind.WRAP_UP if task.state is TaskState.WRAP_UP and task.wrapup_at == stamp:
                self._finish(task, TaskState.COMPLETED, at, auto=True)
            case TimerKind.SLA if (task.state in (_WAITING, _OFFERED) and task.epoch == stamp
                                   and not task.sla_breached):
                task.sla_breached = True
                self._emit(TaskEventKind.SLA_BREACHED, task, at, sla_s=self._queues[task.queue].sla_s,
                           waited_s=at - task.enqueued_at)
            case _:
                return 0
        return 1

    def _expire_offer(self, task: Task, at: float) -> None:
        agent = self._agents[task.agent_id]
        self._back_in_line(task, agent)
        agent.missed_in_row += 1
        self._emit(TaskEventKind.OFFER_EXPIRED, task, at, agent_id=agent.id,
                   missed_in_row=agent.missed_in_row)
        if agent.missed_in_row >= self.config.max_missed_offers and agent.presence is _AVAILABLE:
            self._set_presence(agent, Presence.AWAY, at, "missed_offers")
        else:
            self._agent_changed(agent)
        self._place(task, at)
        self._match_agent(agent, at)

    def _escalate(self, task: Task, at: float) -> None:
        steps = self._queues[task.queue].escalation
        level = task.escalation_level
        step = steps[level]
        waiting = task.state is _WAITING
        if waiting:
            self._unplace(task)
        details: dict[str, Any] = {"step": level, "after_s": step.after_s}
        moved = False
        if step.move_to is not None and step.move_to != task.queue:
            if step.move_to in self._queues:
                details["from_queue"] = task.queue
                self._move_queue(task, step.move_to, at)
                moved = True
            else:
                # Queues may name each other in any order, so a bad name is reported when it fires.
                details["error"] = f"unknown queue {step.move_to!r}"
        if not moved:
            task.escalation_level = level + 1
        if step.skills:
            task.skill_overrides.update(step.skills)
            details["skills"] = dict(step.skills)
        self._emit(TaskEventKind.ESCALATED, task, at, **details)
        self._schedule_queue_timers(task, sla=moved)
        if waiting:
            self._place(task, at)
