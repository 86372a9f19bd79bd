"""evaluate(): one event against a Ruleset -> actions as data plus a trace of why each rule did or not fire.

Pure: no I/O, no clock (the caller passes `now`), no mutation of the inputs. The trace is cheap to
record (a list of (node, actual) pairs per failed rule); it is only turned into `Failure` objects
when someone reads it, which keeps the ingest path fast.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Any

from schemas import Interaction
from schemas.timestamps import rfc3339

from .actions import Action, action_to_dict
from .compiler import CompiledRule, Ruleset
from .conditions import Not, Predicate
from .fields import MISSING
from .model import Rule


@lru_cache(maxsize=512)
def _zone(name: str) -> tzinfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        return None


class Env:
    """What conditions read. One per evaluation; never shared between calls."""

    __slots__ = (
        "_customer_tz",
        "added_segments",
        "added_tags",
        "interaction",
        "now",
        "profile",
        "task",
        "tz",
    )

    def __init__(self, interaction: Any, profile: Any, task: Any, now: datetime, tz: tzinfo) -> None:
        if now.tzinfo is None:
            raise ValueError("evaluate needs an aware `now`")
        self.interaction = interaction
        self.profile = profile
        self.task = task
        self.now = now
        self.tz = tz
        self.added_tags: frozenset[str] = frozenset()
        self.added_segments: frozenset[str] = frozenset()
        self._customer_tz: tzinfo | None = None

    def customer_tz(self) -> tzinfo:
        """The profile's timezone when it names a real zone, else the ruleset's default."""
        if self._customer_tz is None:
            name = _profile_timezone(self.profile)
            self._customer_tz = (_zone(name) if isinstance(name, str) else None) or self.tz
        return self._customer_tz

    def note(self, compiled: CompiledRule) -> None:
        if compiled.tags_added:
            self.added_tags = self.added_tags | compiled.tags_added
        if compiled.segments_added:
            self.added_segments = self.added_segments | compiled.segments_added


def _profile_timezone(profile: Any) -> Any:
    if isinstance(profile, dict):
        return profile.get("timezone")
    return getattr(profile, "timezone", None)


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a condition did not hold: the field, the operator, what it wanted and what it found."""

    field: str | None  # None for a `not` whose inner condition held
    op: str
    expected: Any
    actual: Any  # MISSING when the field is absent
    line: int

    @property
    def missing(self) -> bool:
        return self.actual is MISSING

    def __str__(self) -> str:
        if self.field is None:
            return f"line {self.line}: `not` failed because its condition held: {self.expected}"
        found = "the field is missing" if self.missing else f"found {self.actual!r}"
        want = "" if self.expected is None else f" {self.expected!r}"
        return f"{self.field} {self.op}{want}: {found}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "op": self.op,
            "expected": _jsonable(self.expected),
            "actual": None if self.missing else _jsonable(self.actual),
            "missing": self.missing,
            "line": self.line,
        }


class RuleTrace:
    """One rule the event met: whether it matched and, if not, the conditions that failed."""

    __slots__ = ("_raw", "compiled", "matched")

    def __init__(self, compiled: CompiledRule, matched: bool, raw: list[tuple[Any, Any]]) -> None:
        self.compiled = compiled
        self.matched = matched
        self._raw = raw

    @property
    def rule(self) -> Rule:
        return self.compiled.rule

    @property
    def name(self) -> str:
        return self.compiled.rule.name

    @property
    def failures(self) -> list[Failure]:
        return [failure_of(node, actual) for node, actual in self._raw]

    def to_dict(self) -> dict[str, Any]:
        rule = self.compiled.rule
        return {
            "rule": rule.name,
            "file": rule.file,
            "line": rule.line,
            "priority": rule.priority,
            "matched": self.matched,
            "failures": [f.to_dict() for f in self.failures],
            "actions": [action_to_dict(a) for a in self.compiled.actions] if self.matched else [],
        }


def failure_of(node: Any, actual: Any) -> Failure:
    if isinstance(node, Predicate):
        return Failure(node.field, str(node.op), node.value, actual, node.line)
    assert isinstance(node, Not)
    return Failure(None, "not", node.item.to_dict(), None, node.line)


def _jsonable(value: Any) -> Any:
    if value is MISSING or value is None or isinstance(value, (str, int, float, bool)):
        return None if value is MISSING else value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return rfc3339(value)  # the API's one time format: UTC, ending in Z
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


@dataclass(slots=True)
class Evaluation:
    """The outcome: actions in rule order (highest priority first), and the trace behind them.

    When two matched rules ask for the same kind of thing (two routes), the first one is the
    higher-priority rule's: the hub should let the first win.
    """

    trigger: str
    ruleset_version: str
    actions: list[Action] = field(default_factory=list)
    trace: list[RuleTrace] = field(default_factory=list)
    stopped_by: str | None = None

    @property
    def matched(self) -> list[str]:
        return [t.name for t in self.trace if t.matched]

    def first(self, kind: type) -> Any:
        """The first action of a class (e.g. Route), or None."""
        return next((a for a in self.actions if isinstance(a, kind)), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "ruleset_version": self.ruleset_version,
            "matched": self.matched,
            "stopped_by": self.stopped_by,
            "actions": [action_to_dict(a) for a in self.actions],
            "trace": [t.to_dict() for t in self.trace],
        }


def evaluate(
    ruleset: Ruleset,
    trigger: str,
    *,
    interaction: Interaction | None = None,
    profile: dict[str, Any] | Any | None = None,
    task: dict[str, Any] | None = None,
    now: datetime,
) -> Evaluation:
    """Run the rules `trigger` can meet (for scheduled rules pass `Schedule.trigger`); `now` must be aware.

    An unknown trigger meets no rules. Inputs are read, never changed.
    """
    env = Env(interaction, profile, task, now, ruleset.tz)
    channel = interaction.channel if interaction is not None else None
    result = Evaluation(trigger, ruleset.version)
    actions, record = result.actions, result.trace.append
    for compiled in ruleset.candidates(trigger, channel):
        fails: list[tuple[Any, Any]] = []
        if compiled.check(env, fails):
            record(RuleTrace(compiled, True, fails))
            actions.extend(compiled.actions)
            env.note(compiled)
            if compiled.stops:
                result.stopped_by = compiled.rule.name
                break
        else:
            record(RuleTrace(compiled, False, fails))
    return result
