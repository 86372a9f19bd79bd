"""Reading the `then:` list: each action checked against its argument spec, errors at their lines."""

from __future__ import annotations

import re
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .actions import (
    ACTION_NAMES,
    ACTIONS,
    Action,
    NoRoute,
    SetProfile,
    StartTimer,
    Stop,
    check_profile_value,
    suggest,
)
from .conditions import Condition
from .durations import parse_duration
from .errors import SpecError
from .model import TRIGGERS
from .yaml_nodes import NodeReader

NAME_PATTERN = r"^\w[\w.-]{0,99}$"
MAX_TIMER_DEPTH = 4
_TIMER_KEYS = ("name", "after", "unless", "then", "cancel_on")


class ActionReader(NodeReader):
    timer_names: set[str]

    def condition(self, node: Node, depth: int) -> Condition | None:
        raise NotImplementedError  # the rule reader supplies it; timers' `unless` needs it

    def read_actions(self, node: Node, depth: int) -> list[Action] | None:
        if not isinstance(node, SequenceNode) or not node.value:
            self.error(node, "`then:` must be a non-empty list of actions")
            return None
        actions: list[Action] = []
        for item in node.value:
            actions.extend(self.action(item, depth))
        return actions

    def action(self, node: Node, depth: int) -> list[Action]:
        if isinstance(node, ScalarNode):
            name, arg = self.scalar(node), None
        elif isinstance(node, MappingNode) and len(node.value) == 1:
            key_node, arg = node.value[0]
            name = key_node.value if isinstance(key_node, ScalarNode) else None
        else:
            hint = self.keys_hint(node)
            self.error(node, f"an action is a mapping with one key, e.g. `- add_tag: vip`{hint}")
            return []
        if name not in ACTION_NAMES:
            self.error(node, f"unknown action {name!r}{suggest(name, ACTION_NAMES)}")
            return []
        if name == "auto_reply" and self.on_schedule:
            self.error(node, "auto_reply needs an interaction to answer; scheduled rules have none")
            return []
        match name:
            case "stop":
                if arg is not None and self.scalar(arg) not in (None, True):
                    self.error(arg, "stop takes no arguments")
                return [Stop()]
            case "no_route":
                return self.no_route(node, arg, depth)
            case "set_profile":
                return self.set_profile(node, arg)
            case "start_timer":
                timer = self.start_timer(node, arg, depth)
                return [timer] if timer is not None else []
        return self.simple_action(name, node, arg)

    def no_route(self, node: Node, arg: Node | None, depth: int) -> list[Action]:
        if arg is not None and (not isinstance(arg, ScalarNode) or self.scalar(arg) not in (None, True)):
            self.error(arg, "no_route takes no arguments (`- no_route`)")
            return []
        # Routing happens once, as the interaction is stored: later there is nothing left to keep from it.
        if self.on_schedule:
            self.error(node, "no_route keeps an arriving interaction from routing; scheduled rules have none")
            return []
        if depth > 0:
            self.error(node, "no_route cannot wait for a timer: routing happens as the interaction arrives")
            return []
        return [NoRoute()]

    def keys_hint(self, node: Node) -> str:
        if isinstance(node, MappingNode):
            names = [k.value for k, _ in node.value if isinstance(k, ScalarNode)]
            return f"; found {', '.join(names)} (check the indentation)"
        return ""

    def simple_action(self, name: str, node: Node, arg: Node | None) -> list[Action]:
        spec = ACTIONS[name]
        if arg is None or isinstance(arg, ScalarNode):
            if spec.shorthand is None or arg is None or self.scalar(arg) is None:
                required = ", ".join(k for k, a in spec.args.items() if a.required)
                self.error(node, f"{name} needs arguments: {required}")
                return []
            raw = {spec.shorthand: (arg, self.scalar(arg))}
        else:
            keys = self.mapping(arg, f"{name}'s arguments", tuple(spec.args))
            if keys is None:
                return []
            before = len(self.issues)
            raw = {k: (n, self.value(n)) for k, n in keys.items()}
            if len(self.issues) > before:
                return []
        args: dict[str, Any] = {}
        ok = True
        for key, (value_node, value) in raw.items():
            try:
                args[key] = spec.args[key].convert(value, self.channels)
            except SpecError as exc:
                self.error(value_node, f"{name}.{key}: {exc}")
                ok = False
        for key, a in spec.args.items():
            if a.required and key not in raw:
                self.error(node, f"{name} is missing its required argument `{key}`")
                ok = False
        if ok and spec.check is not None:
            try:
                spec.check(args)
            except SpecError as exc:
                self.error(node, str(exc))
                ok = False
        return [spec.cls(**args)] if ok else []

    def set_profile(self, node: Node, arg: Node | None) -> list[Action]:
        if not isinstance(arg, MappingNode) or not arg.value:
            self.error(node, "set_profile takes a mapping of field: value, e.g. {tier: vip}")
            return []
        out: list[Action] = []
        for key_node, value_node in arg.value:
            try:
                value = check_profile_value(str(key_node.value), self.value(value_node))
                out.append(SetProfile(str(key_node.value), value))
            except SpecError as exc:
                self.error(key_node, str(exc))
        return out

    def start_timer(self, node: Node, arg: Node | None, depth: int) -> StartTimer | None:
        if depth >= MAX_TIMER_DEPTH:
            self.error(node, "timers nest too deeply")
            return None
        keys = self.mapping(arg, "start_timer's arguments", _TIMER_KEYS) if arg is not None else None
        if keys is None:
            self.error(node, "start_timer needs {name, after, then}")
            return None
        missing = [k for k in ("name", "after", "then") if k not in keys]
        if missing:
            self.error(node, f"start_timer is missing {', '.join(missing)}")
            return None
        before = len(self.issues)
        name = self.scalar(keys["name"])
        if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
            self.error(keys["name"], f"a timer name is letters, digits, '_', '.' or '-', not {name!r}")
        elif name in self.timer_names:
            self.error(keys["name"], f"duplicate timer name {name!r} in this rule")
        self.timer_names.add(str(name))
        try:
            after = parse_duration(self.scalar(keys["after"]))
        except SpecError as exc:
            self.error(keys["after"], str(exc))
        unless = self.condition(keys["unless"], 1) if "unless" in keys else None
        then = self.read_actions(keys["then"], depth + 1)
        cancel_on: list[str] = []
        if "cancel_on" in keys:
            raw = self.value(keys["cancel_on"])
            cancel_on = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else [raw]
            for event in cancel_on:
                if event not in TRIGGERS:
                    hint = suggest(event, TRIGGERS)
                    self.error(keys["cancel_on"], f"cancel_on: unknown event {event!r}{hint}")
        if len(self.issues) > before or self.rule is None:
            return None
        return StartTimer(self.rule, name, after, tuple(then or ()), unless, tuple(cancel_on))
