"""Rule files (YAML) -> `Rule`s, collecting every mistake with its file and line before refusing.

The YAML is read with `yaml.compose`, so every node keeps its position and nothing is ever
constructed from a tag (no code runs from a rule file). Keys are read as written, which also
keeps YAML 1.1 from turning the rule key `on:` into `True`.
"""

from __future__ import annotations

import hashlib
import json
import re
import zoneinfo
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from schemas import BUILTIN_CHANNELS

from .actions import check_channel, suggest
from .conditions import AllOf, AnyOf, Condition, Not, Predicate
from .errors import Issue, RulesError, SpecError
from .fields import check_field, compile_getter
from .model import TRIGGERS, Rule
from .operators import OPERATORS, Operator
from .read_actions import NAME_PATTERN, ActionReader
from .schedule import Schedule, parse_schedule
from .yaml_nodes import TooBig, peek_name

_RULE_NAME = re.compile(NAME_PATTERN)
_TOP_KEYS = ("rules", "timezone")
_RULE_KEYS = ("name", "on", "when", "then", "priority", "stop", "description", "enabled")
_PREDICATE_KEYS = ("field", "op", "value")
MAX_DEPTH = 16  # conditions nest no deeper: deeper is a mistake, and it bounds recursion


@dataclass(frozen=True, slots=True)
class LoadedRules:
    rules: tuple[Rule, ...]  # enabled rules, in file order
    timezone: str  # the default for is_today and naive datetimes when the profile has none
    version: str  # sha256 of the normalized source, 12 hex chars
    files: tuple[str, ...]


def load_path(
    path: str | Path, *, default_timezone: str = "UTC", channels: Collection[str] | None = None
) -> LoadedRules:
    """Read one YAML file, or every *.yaml / *.yml under a directory (sorted by path)."""
    root = Path(path)
    if root.is_dir():
        files = sorted(
            p
            for p in root.rglob("*")
            if p.suffix in (".yaml", ".yml") and p.is_file() and not any(s.startswith(".") for s in p.parts)
        )
        if not files:
            raise RulesError([Issue(str(root), 0, None, "no *.yaml or *.yml rule files here")])
    elif root.is_file():
        files = [root]
    else:
        raise RulesError([Issue(str(root), 0, None, "no such file or directory")])
    sources = []
    for f in files:
        try:
            sources.append((str(f), f.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise RulesError([Issue(str(f), 0, None, f"cannot read: {exc}")]) from None
    return load_sources(sources, default_timezone=default_timezone, channels=channels)


def load_text(
    text: str,
    *,
    file: str = "<string>",
    default_timezone: str = "UTC",
    channels: Collection[str] | None = None,
) -> LoadedRules:
    return load_sources([(file, text)], default_timezone=default_timezone, channels=channels)


def load_sources(
    sources: Iterable[tuple[str, str]],
    *,
    default_timezone: str = "UTC",
    channels: Collection[str] | None = None,
) -> LoadedRules:
    """(file name, text) pairs in order -> rules; raises RulesError listing every problem."""
    reader = _Reader(frozenset(channels) if channels is not None else BUILTIN_CHANNELS)
    rules: list[Rule] = []
    normalized: list[Any] = []
    names: list[str] = []
    for file, text in sources:
        names.append(file)
        rules.extend(reader.read_file(file, text, normalized))
    timezone = reader.timezone or default_timezone
    if not _known_zone(timezone):
        reader.issues.append(Issue("<config>", 0, None, f"unknown default timezone {timezone!r}"))
    if reader.issues:
        raise RulesError(reader.issues)
    # Formatting and comments do not change the version; any change in meaning does.
    canonical = json.dumps([timezone, normalized], sort_keys=True, default=str, ensure_ascii=False)
    version = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    return LoadedRules(tuple(rules), timezone, version, tuple(names))


def _known_zone(name: object) -> bool:
    if not isinstance(name, str) or not name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


class _Reader(ActionReader):
    """Walks composed YAML nodes; appends an Issue for each mistake and keeps going."""

    def __init__(self, channels: frozenset[str]) -> None:
        super().__init__(channels)
        self.seen: dict[str, tuple[str, int]] = {}
        self.timezone: str | None = None
        self.timer_names: set[str] = set()

    def read_file(self, file: str, text: str, normalized: list[Any]) -> list[Rule]:
        self.file, self.rule = file, None
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 0
            self.issues.append(Issue(file, line, None, f"YAML syntax: {exc.problem or exc.context}"))
            return []
        except yaml.YAMLError as exc:
            self.issues.append(Issue(file, 0, None, f"YAML: {exc}"))
            return []
        except RecursionError:
            self.issues.append(Issue(file, 0, None, "YAML nested too deeply"))
            return []
        if root is None:
            self.issues.append(Issue(file, 1, None, "file is empty; expected a mapping with a `rules:` list"))
            return []
        self.nodes = 0
        try:
            normalized.append(self.value(root, report=False))  # the walk below reports
            self.nodes = 0  # the walk below reads each subtree about once more
            return self.read_top(root)
        except TooBig:
            return []

    def read_top(self, root: Node) -> list[Rule]:
        top = self.mapping(root, "a rule file", _TOP_KEYS)
        if top is None:
            return []
        if "timezone" in top:
            self.read_timezone(top["timezone"])
        if "rules" not in top:
            self.error(root, "missing `rules:` (a list of rules)")
            return []
        rules_node = top["rules"]
        if not isinstance(rules_node, SequenceNode):
            self.error(rules_node, "`rules:` must be a list of rules")
            return []
        out = []
        for node in rules_node.value:
            rule = self.read_rule(node)
            if rule is not None:
                out.append(rule)
        return out

    def read_timezone(self, node: Node) -> None:
        name = self.scalar(node)
        if not _known_zone(name):
            self.error(node, f"unknown timezone {name!r}; use an IANA name like Asia/Seoul")
        elif self.timezone is not None and name != self.timezone:
            self.error(node, f"timezone {name!r} differs from {self.timezone!r} set in another file")
        else:
            self.timezone = name

    # --- rules -------------------------------------------------------------------------------

    def read_rule(self, node: Node) -> Rule | None:
        self.rule, before = peek_name(node), len(self.issues)
        keys = self.mapping(node, "a rule", _RULE_KEYS)
        if keys is None:
            return None
        name = self.read_name(node, keys)
        self.rule = name
        self.timer_names = set()
        trigger = self.read_trigger(keys["on"]) if "on" in keys else None
        if "on" not in keys:
            self.error(node, "missing `on:`")
        self.on_schedule = isinstance(trigger, Schedule)
        when = self.condition(keys["when"], 0) if "when" in keys else None
        then = self.read_actions(keys["then"], 0) if "then" in keys else None
        if "then" not in keys:
            self.error(node, "missing `then:`")
        priority, stop, enabled = 0, False, True
        if "priority" in keys:
            priority = self.scalar(keys["priority"])
            if isinstance(priority, bool) or not isinstance(priority, int):
                self.error(keys["priority"], f"priority must be a whole number, not {priority!r}")
        if "stop" in keys:
            stop = self.flag(keys["stop"], "stop")
        if "enabled" in keys:
            enabled = self.flag(keys["enabled"], "enabled")
        description = self.scalar(keys["description"]) if "description" in keys else None
        if len(self.issues) > before or not enabled or name is None:
            return None
        return Rule(
            name=name,
            on=trigger,  # type: ignore[arg-type]
            when=when,
            then=tuple(then or ()),
            priority=priority,
            stop=stop,
            file=self.file,
            line=node.start_mark.line + 1,
            description=description if isinstance(description, str) else None,
        )

    def read_name(self, node: Node, keys: dict[str, Node]) -> str | None:
        if "name" not in keys:
            self.error(node, "missing `name:`")
            return None
        name = self.scalar(keys["name"])
        if not isinstance(name, str) or not _RULE_NAME.match(name):
            self.error(keys["name"], f"a rule name is 1-100 letters, digits, '_', '.' or '-', not {name!r}")
            return None
        if name in self.seen:
            file, line = self.seen[name]
            self.rule = name
            self.error(keys["name"], f"duplicate rule name {name!r}; first defined at {file}:{line}")
        else:
            self.seen[name] = (self.file, keys["name"].start_mark.line + 1)
        return name

    def read_trigger(self, node: Node) -> str | Schedule | None:
        if isinstance(node, MappingNode):
            keys = self.mapping(node, "a schedule trigger", ("schedule",))
            if keys is None:
                return None
            if "schedule" not in keys:
                self.error(node, 'a mapping trigger is {schedule: "daily 09:00"}')
                return None
            try:
                return parse_schedule(self.scalar(keys["schedule"]))
            except SpecError as exc:
                self.error(keys["schedule"], str(exc))
                return None
        value = self.scalar(node)
        if value not in TRIGGERS:
            known = ", ".join(TRIGGERS)
            hint = suggest(value, TRIGGERS)
            self.error(node, f"unknown trigger {value!r}{hint}; known: {known}, or {{schedule: ...}}")
            return None
        return value

    # --- conditions ----------------------------------------------------------------------------

    def condition(self, node: Node, depth: int) -> Condition | None:
        if depth > MAX_DEPTH:
            self.error(node, f"conditions nest more than {MAX_DEPTH} levels deep")
            return None
        line = node.start_mark.line + 1
        if isinstance(node, SequenceNode):  # a bare list means all of them
            return self.group(AllOf, node, depth, line)
        if isinstance(node, ScalarNode) and self.scalar(node) is None:
            return None
        keys = self.mapping(node, "a condition", (*_PREDICATE_KEYS, "all", "any", "not"))
        if keys is None:
            return None
        groups = [k for k in ("all", "any", "not") if k in keys]
        if groups and len(keys) > 1:
            found = ", ".join(keys)
            self.error(node, f"a condition has one of all/any/not, or field/op/value; found {found}")
            return None
        match groups:
            case ["all"]:
                return self.group(AllOf, keys["all"], depth, line)
            case ["any"]:
                return self.group(AnyOf, keys["any"], depth, line)
            case ["not"]:
                inner = self.condition(keys["not"], depth + 1)
                return Not(inner, line) if inner is not None else None
        return self.predicate(node, keys, line)

    def group(self, cls: type[AllOf | AnyOf], node: Node, depth: int, line: int) -> Condition | None:
        if not isinstance(node, SequenceNode) or not node.value:
            self.error(node, "all/any takes a non-empty list of conditions")
            return None
        items = [self.condition(n, depth + 1) for n in node.value]
        if any(i is None for i in items):
            return None
        return cls(tuple(items), line)  # type: ignore[arg-type]

    def predicate(self, node: Node, keys: dict[str, Node], line: int) -> Predicate | None:
        if "op" not in keys:
            self.error(node, "a condition needs `op:` (or all/any/not)")
            return None
        op_name = self.scalar(keys["op"])
        try:
            op = Operator(op_name)
        except ValueError:
            hint = suggest(op_name, [o.value for o in Operator])
            self.error(keys["op"], f"unknown operator {op_name!r}{hint}")
            return None
        spec = OPERATORS[op]
        field = self.predicate_field(node, keys, op, spec.implicit_field)
        if spec.takes_value and "value" not in keys:
            self.error(node, f"op {op} needs a `value:`")
            return None
        if not spec.takes_value and "value" in keys:
            self.error(keys["value"], f"op {op} takes no value")
            return None
        before = len(self.issues)
        value = self.value(keys["value"]) if "value" in keys else None
        if len(self.issues) > before:
            return None
        try:
            test = spec.build(value)
        except SpecError as exc:
            self.error(keys.get("value", node), f"{op}: {exc}")
            return None
        if field is None:
            return None
        if field == "interaction.channel" and op in (Operator.EQ, Operator.NE, Operator.IN, Operator.NOT_IN):
            for channel in value if isinstance(value, list) else [value]:
                try:
                    check_channel(channel, self.channels)
                except SpecError as exc:
                    self.error(keys["value"], str(exc))
                    return None
        if isinstance(value, list):
            value = tuple(value)
        return Predicate(field, op, value, line, get=compile_getter(field), test=test)

    def predicate_field(
        self, node: Node, keys: dict[str, Node], op: Operator, implicit: str | None
    ) -> str | None:
        if "field" not in keys:
            if implicit is None:
                self.error(node, "a condition needs `field:`")
            return implicit
        try:
            field = check_field(self.scalar(keys["field"]))
        except SpecError as exc:
            self.error(keys["field"], str(exc))
            return None
        if implicit is not None and field != implicit:
            self.error(keys["field"], f"op {op} always reads {implicit}; drop `field:`")
            return None
        if self.on_schedule and field.startswith("interaction."):
            self.error(keys["field"], "a scheduled rule has no interaction; use profile. fields")
            return None
        return field
