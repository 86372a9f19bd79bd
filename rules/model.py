"""The rules AST: what a loaded rule file says, with operators already resolved to functions.

Conditions are a small tree (AllOf / AnyOf / Not / Predicate); each node keeps its source line so a
trace can point back at the file. Triggers are event-type strings or a `Schedule`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .actions import Action
from .fields import Getter
from .operators import Operator, Test
from .schedule import Schedule

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
class Predicate:
    field: str
    op: Operator
    value: Any
    line: int
    get: Getter = dataclasses.field(repr=False, compare=False)
    test: Test = dataclasses.field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "op": str(self.op)}
        if self.value is not None:
            out["value"] = _plain(self.value)
        return out


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Condition, ...]
    line: int

    def to_dict(self) -> dict[str, Any]:
        return {"all": [c.to_dict() for c in self.items]}


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Condition, ...]
    line: int

    def to_dict(self) -> dict[str, Any]:
        return {"any": [c.to_dict() for c in self.items]}


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition
    line: int

    def to_dict(self) -> dict[str, Any]:
        return {"not": self.item.to_dict()}


Condition = Predicate | AllOf | AnyOf | Not


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


def _plain(value: Any) -> Any:
    """JSON-friendly form of a predicate value (YAML dates become ISO strings)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
