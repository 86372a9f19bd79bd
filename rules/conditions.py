"""Rule conditions: the `when` of a rule and the `unless` of a timer, with operators already resolved
to functions.

A condition is a small tree (AllOf / AnyOf / Not / Predicate); each node keeps its source line so a
trace can point back at the file. It is its own module because both rules.model (a Rule's `when`)
and rules.actions (a StartTimer's `unless`) hold one, and actions are part of the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .fields import Getter
from .operators import Operator, Test


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


def _plain(value: Any) -> Any:
    """JSON-friendly form of a predicate value (YAML dates become ISO strings)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
