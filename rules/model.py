"""The rules AST: what a loaded rule file says, with operators already resolved to functions.

A Rule is a trigger, a condition and its actions. Triggers are event-type strings or a `Schedule`;
conditions are a small tree (AllOf / AnyOf / Not / Predicate, in rules.conditions, re-exported
here); actions are rules.actions.
"""

from __future__ import annotations

from dataclasses import dataclass

from .actions import Action
from .conditions import AllOf, AnyOf, Condition, Not, Predicate
from .schedule import Schedule

__all__ = ["TRIGGERS", "AllOf", "AnyOf", "Condition", "Not", "Predicate", "Rule"]

TRIGGERS = (
    "interaction.received",
    "interaction.sent",
    "message.delivered",
    "message.failed",
    "task.sla_breached",
    "task.abandoned",
    "profile.created",
    "profile.updated",
)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    on: str | Schedule  # an event type from TRIGGERS, or a schedule
    when: Condition | None  # None: always
    then: tuple[Action, ...]
    priority: int = 0
    stop: bool = False
    file: str = "<string>"
    line: int = 0
    description: str | None = None

    @property
    def trigger(self) -> str:
        """The key evaluate() is called with: the event type, or `schedule:<cron>`."""
        return self.on.trigger if isinstance(self.on, Schedule) else self.on
