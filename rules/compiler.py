"""Loaded rules -> a `Ruleset`: conditions compiled to closures and rules indexed by trigger and channel.

An event meets only the rules that can fire for it: rules are bucketed by trigger, and a rule whose
top-level conjunction pins `interaction.channel` (eq / in) sits only in those channels' buckets.
Each bucket is pre-sorted (priority desc, then file order), so evaluation is a straight loop.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .actions import Action, AddSegment, AddTag, StartTimer, Stop
from .conditions import AllOf, AnyOf, Condition, Not, Predicate
from .loader import LoadedRules, load_path, load_text
from .model import Rule
from .operators import Operator
from .schedule import Schedule, parse_schedule

# (env, failures) -> matched. On a miss, (node, actual) pairs explaining it are left in `failures`.
Check = Callable[[Any, list[tuple[Any, Any]]], bool]


def compile_condition(cond: Condition) -> Check:
    match cond:
        case Predicate(get=get, test=test):

            def predicate(env: Any, fails: list[tuple[Any, Any]]) -> bool:
                actual = get(env)
                if test(actual, env):
                    return True
                fails.append((cond, actual))
                return False

            return predicate
        case AllOf(items=items) if all(isinstance(i, Predicate) for i in items):
            # The common shape, inlined: one call per rule instead of one per predicate.
            preds = tuple((p.get, p.test, p) for p in items)  # type: ignore[union-attr]

            def all_predicates(env: Any, fails: list[tuple[Any, Any]]) -> bool:
                for get, test, pred in preds:
                    actual = get(env)
                    if not test(actual, env):
                        fails.append((pred, actual))
                        return False
                return True

            return all_predicates
        case AllOf(items=items):
            checks = tuple(compile_condition(i) for i in items)

            def all_of(env: Any, fails: list[tuple[Any, Any]]) -> bool:
                for c in checks:
                    if not c(env, fails):
                        return False
                return True

            return all_of
        case AnyOf(items=items) if all(isinstance(i, Predicate) for i in items):
            alternatives = tuple((p.get, p.test, p) for p in items)  # type: ignore[union-attr]

            def any_predicate(env: Any, fails: list[tuple[Any, Any]]) -> bool:
                misses = []
                for get, test, pred in alternatives:
                    actual = get(env)
                    if test(actual, env):
                        return True
                    misses.append((pred, actual))
                fails.extend(misses)
                return False

            return any_predicate
        case AnyOf(items=items):
            checks = tuple(compile_condition(i) for i in items)

            def any_of(env: Any, fails: list[tuple[Any, Any]]) -> bool:
                mark = len(fails)
                for c in checks:
                    if c(env, fails):
                        del fails[mark:]  # earlier misses no longer explain anything
                        return True
                return False

            return any_of
        case Not(item=item):
            inner = compile_condition(item)

            def negated(env: Any, fails: list[tuple[Any, Any]]) -> bool:
                mark = len(fails)
                if inner(env, fails):
                    fails.append((cond, None))
                    return False
                del fails[mark:]
                return True

            return negated
    raise TypeError(f"not a condition: {cond!r}")


def _always(env: Any, fails: list[tuple[Any, Any]]) -> bool:
    return True


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    rule: Rule
    check: Check
    actions: tuple[Action, ...]  # `stop` removed: it is control flow, folded into `stops`
    stops: bool
    tags_added: frozenset[str]  # so a later rule's has_tag sees an earlier rule's add_tag
    segments_added: frozenset[str]

    @classmethod
    def of(cls, rule: Rule) -> CompiledRule:
        when = rule.when
        if channel_constraint(when) is not None:
            # The index only hands this rule events on its channels, so re-testing them is waste.
            when = _without_channel(when)
        return cls(
            rule=rule,
            check=compile_condition(when) if when is not None else _always,
            actions=tuple(a for a in rule.then if not isinstance(a, Stop)),
            stops=rule.stop or any(isinstance(a, Stop) for a in rule.then),
            tags_added=frozenset(a.tag for a in rule.then if isinstance(a, AddTag)),
            segments_added=frozenset(a.segment for a in rule.then if isinstance(a, AddSegment)),
        )


@dataclass(frozen=True, slots=True)
class _TriggerIndex:
    by_channel: dict[str, tuple[CompiledRule, ...]]
    default: tuple[CompiledRule, ...]  # rules not pinned to a channel; all an unknown channel meets


def channel_constraint(cond: Condition | None) -> frozenset[str] | None:
    """Channels a rule can fire on, read from eq/in predicates of its top-level conjunction."""
    if cond is None:
        return None
    allowed: frozenset[str] | None = None
    stack = [cond]
    while stack:
        node = stack.pop()
        if isinstance(node, AllOf):
            stack.extend(node.items)
        elif isinstance(node, Predicate) and node.field == "interaction.channel":
            if node.op is Operator.EQ:
                values = frozenset([node.value])
            elif node.op is Operator.IN:
                values = frozenset(node.value)
            else:
                continue
            allowed = values if allowed is None else allowed & values
    return allowed


def _without_channel(cond: Condition | None) -> Condition | None:
    """`cond` minus the eq/in channel predicates of its top-level conjunction."""
    if _is_channel_pin(cond):
        return None
    if not isinstance(cond, AllOf):
        return cond
    items = [i for i in (_without_channel(c) for c in cond.items) if i is not None]
    if not items:
        return None
    return items[0] if len(items) == 1 else AllOf(tuple(items), cond.line)


def _is_channel_pin(cond: Condition | None) -> bool:
    return (
        isinstance(cond, Predicate)
        and cond.field == "interaction.channel"
        and cond.op in (Operator.EQ, Operator.IN)
    )


class Ruleset:
    """Compiled, indexed, immutable rules. Safe to share between tasks and swap on reload."""

    def __init__(self, loaded: LoadedRules) -> None:
        self.version = loaded.version
        self.timezone = loaded.timezone
        self.tz = zoneinfo.ZoneInfo(loaded.timezone)
        self.rules = loaded.rules
        self.files = loaded.files
        self.warnings: list[str] = []
        order = sorted(range(len(loaded.rules)), key=lambda i: (-loaded.rules[i].priority, i))
        compiled = [CompiledRule.of(loaded.rules[i]) for i in order]
        self._by_name = {c.rule.name: c for c in compiled}
        self.schedules: dict[str, Schedule] = {}
        self._index: dict[str, _TriggerIndex] = {}
        for trigger in dict.fromkeys(c.rule.trigger for c in compiled):
            self._index[trigger] = self._build_index([c for c in compiled if c.rule.trigger == trigger])
        for rule in loaded.rules:
            if isinstance(rule.on, Schedule):
                self.schedules.setdefault(rule.on.trigger, rule.on)

    def _build_index(self, rules: list[CompiledRule]) -> _TriggerIndex:
        pins = {id(c): channel_constraint(c.rule.when) for c in rules}
        channels = sorted({ch for pin in pins.values() if pin for ch in pin})
        for c in rules:
            if pins[id(c)] == frozenset():
                self.warnings.append(
                    f"{c.rule.file}:{c.rule.line}: rule {c.rule.name!r} can never fire: "
                    "its channel conditions exclude each other"
                )
        by_channel = {
            ch: tuple(c for c in rules if pins[id(c)] is None or ch in pins[id(c)])  # type: ignore[operator]
            for ch in channels
        }
        return _TriggerIndex(by_channel, tuple(c for c in rules if pins[id(c)] is None))

    def candidates(self, trigger: str, channel: str | None) -> tuple[CompiledRule, ...]:
        """The rules an event can meet, in evaluation order."""
        index = self._index.get(trigger)
        if index is None:
            if not trigger.startswith("schedule:"):
                return ()
            index = self._index.get(_normalize_schedule(trigger))
            if index is None:
                return ()
        if channel is None:
            return index.default
        return index.by_channel.get(channel, index.default)

    @property
    def triggers(self) -> frozenset[str]:
        return frozenset(self._index)

    def rule(self, name: str) -> Rule | None:
        compiled = self._by_name.get(name)
        return compiled.rule if compiled else None

    def timer(self, rule: str, name: str) -> StartTimer | None:
        """The timer a persisted `StartTimer` names, as the current rules define it (None if gone)."""
        found = self._by_name.get(rule)
        stack = list(found.actions) if found else []
        while stack:
            action = stack.pop()
            if isinstance(action, StartTimer):
                if action.name == name:
                    return action
                stack.extend(action.then)
        return None

    def __repr__(self) -> str:
        return f"<Ruleset {self.version} rules={len(self.rules)} tz={self.timezone}>"


def _normalize_schedule(trigger: str) -> str:
    try:
        return parse_schedule(trigger.removeprefix("schedule:")).trigger
    except ValueError:
        return trigger


def load_ruleset(
    path: str | Path, *, default_timezone: str = "UTC", channels: Collection[str] | None = None
) -> Ruleset:
    """Load, check and compile a rules directory or file; raises RulesError with every problem."""
    return Ruleset(load_path(path, default_timezone=default_timezone, channels=channels))


def loads_ruleset(
    text: str,
    *,
    file: str = "<string>",
    default_timezone: str = "UTC",
    channels: Collection[str] | None = None,
) -> Ruleset:
    return Ruleset(load_text(text, file=file, default_timezone=default_timezone, channels=channels))
