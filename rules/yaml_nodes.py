"""Reading composed YAML nodes with their line numbers: the base of the rules loader.

Every problem becomes an `Issue` at the node's 1-based line and reading goes on, so one pass
reports every mistake in a file. Only safe scalar tags are ever constructed.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .actions import suggest
from .errors import Issue

MAX_NODES = 100_000  # YAML aliases can make a small file expand without bound


class NodeReader:
    """Issue collection plus typed access to nodes; subclasses read the rules vocabulary."""

    def __init__(self, channels: frozenset[str]) -> None:
        self.channels = channels
        self.issues: list[Issue] = []
        self.file = "<string>"
        self.rule: str | None = None
        self.on_schedule = False
        self.nodes = 0
        self.constructor = SafeConstructor()

    def error(self, node: Node | None, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 0
        self.issues.append(Issue(self.file, line, self.rule, message))

    def mapping(self, node: Node, what: str, allowed: tuple[str, ...]) -> dict[str, Node] | None:
        """Key -> value node; flags non-mappings, non-string keys, duplicates and unknown keys."""
        if not isinstance(node, MappingNode):
            self.error(node, f"{what} must be a mapping (key: value), not {_describe(node)}")
            return None
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.error(key_node, f"keys in {what} must be plain words")
                continue
            key = key_node.value
            if key in out:
                self.error(key_node, f"duplicate key {key!r} in {what}")
            elif key not in allowed:
                self.error(
                    key_node,
                    f"unknown key {key!r} in {what}{suggest(key, allowed)}; allowed: {', '.join(allowed)}",
                )
            else:
                out[key] = value_node
        return out

    def flag(self, node: Node, what: str) -> bool:
        value = self.scalar(node)
        if not isinstance(value, bool):
            self.error(node, f"{what} must be true or false, not {value!r}")
            return False
        return value

    def scalar(self, node: Node) -> Any:
        return self.value(node) if isinstance(node, ScalarNode) else _Structured(node)

    def value(self, node: Node, report: bool = True) -> Any:
        """Plain Python data from a node (safe tags only); string keys kept as written.

        A value no safe tag can build (`!!python/...`, a bad timestamp) becomes None plus an Issue
        when `report`; callers compare `len(self.issues)` to avoid follow-on complaints.
        """
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.error(node, f"file expands to more than {MAX_NODES} YAML nodes (aliases?)")
            raise TooBig
        if isinstance(node, SequenceNode):
            return [self.value(n, report) for n in node.value]
        if isinstance(node, MappingNode):
            return {
                str(k.value) if isinstance(k, ScalarNode) else "?": self.value(v, report)
                for k, v in node.value
            }
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            self.constructor = SafeConstructor()  # it keeps half-built state after a failure
            if report:
                self.error(node, f"bad value {node.value!r}: {getattr(exc, 'problem', None) or exc}")
            return None


def peek_name(node: Node) -> str | None:
    """The rule's name, if it has a plain one, so even its first errors can say which rule."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == "name" and isinstance(value, ScalarNode):
                return str(value.value)
    return None


class TooBig(Exception):
    """Aborts reading a file whose aliases expand too far; already reported as an Issue."""


class _Structured:
    """Stands for a list or mapping where a single value was expected, so messages can say so."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def __repr__(self) -> str:
        return _describe(self.node)


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return repr(node.value)
