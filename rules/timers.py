"""Timers started by `start_timer`: pure decisions only; the hub persists, schedules and cancels them.

The hub stores (rule, timer name, due time, the interaction/profile/task ids, ruleset version).
When the due time comes it reloads those records, looks the definition up again with
`Ruleset.timer(rule, name)` (a reload may have changed or removed it) and calls `fire_timer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .actions import Action, StartTimer, Stop
from .compiler import Ruleset, compile_condition
from .evaluate import Env, Failure, failure_of


@dataclass(frozen=True, slots=True)
class TimerOutcome:
    timer: StartTimer
    fired: bool  # False when `unless` held: the timer ends quietly
    actions: tuple[Action, ...]
    unless_held: bool
    why: tuple[Failure, ...] = ()  # when it fired: the `unless` conditions that did not hold


def due_at(timer: StartTimer, started_at: datetime) -> datetime:
    return started_at + timer.after


def cancels(timer: StartTimer, event_type: str) -> bool:
    """Whether an event on the same interaction cancels the pending timer (e.g. an agent's reply)."""
    return event_type in timer.cancel_on


def fire_timer(
    ruleset: Ruleset,
    timer: StartTimer,
    *,
    interaction: Any = None,
    profile: Any = None,
    task: Any = None,
    now: datetime,
) -> TimerOutcome:
    """Decide what a due timer does, given the records as they are *now*."""
    env = Env(interaction, profile, task, now, ruleset.tz)
    fails: list[tuple[Any, Any]] = []
    if timer.unless is not None and compile_condition(timer.unless)(env, fails):
        return TimerOutcome(timer, fired=False, actions=(), unless_held=True)
    actions = tuple(a for a in timer.then if not isinstance(a, Stop))
    return TimerOutcome(timer, True, actions, False, tuple(failure_of(n, a) for n, a in fails))
