"""Segments as rules: each named profile condition compiled into one rule (`segment.<name>` on
`profile.updated`), so segments and rules share one condition language and one set of errors.

Here rather than in the hub so that the hub's settings can check the configured segments at
start-up without importing the profile capability that evaluates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from schemas import EventType, OmnihubError

from .compiler import Ruleset, loads_ruleset
from .errors import RulesError

SEGMENT_RULE_PREFIX = "segment."  # rule names allow no colon
_FILE = "<segments>"


class SegmentError(OmnihubError, ValueError):
    """A configured segment condition the rules loader refused (ValueError: pydantic reports it)."""


def compile_segments(conditions: Mapping[str, Any]) -> Ruleset:
    """One rule per segment; a refused condition raises SegmentError naming its segment(s)."""
    lines: list[str] = ["rules:" if conditions else "rules: []"]
    spans: list[tuple[int, str]] = []  # (first line of the rule, segment name)
    for name, condition in conditions.items():
        rule = {"name": f"{SEGMENT_RULE_PREFIX}{name}", "on": EventType.PROFILE_UPDATED.value, "when": condition,
                "then": [{"add_tag": "segment"}]}
        spans.append((len(lines) + 1, name))
        text = yaml.safe_dump([rule], sort_keys=False, allow_unicode=True, default_flow_style=False)
        lines.extend("  " + line for line in text.splitlines())
    try:
        return loads_ruleset("\n".join(lines) + "\n", file=_FILE)
    except RulesError as exc:
        raise SegmentError("; ".join(_explain(issue, spans) for issue in exc.issues)) from None


def _explain(issue: Any, spans: list[tuple[int, str]]) -> str:
    name = issue.rule.removeprefix(SEGMENT_RULE_PREFIX) if issue.rule else None
    if name is None:
        name = next((seg for first, seg in reversed(spans) if issue.line >= first), None)
    return f"segment {name!r}: {issue.message}" if name else issue.message
