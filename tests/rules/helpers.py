"""Shared builders for the rules tests: an interaction, a ruleset from inline YAML, one evaluation."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

from rules import Evaluation, Ruleset, evaluate, loads_ruleset
from schemas import Interaction

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 10:00 in Seoul


def interaction(**overrides: Any) -> Interaction:
    data: dict[str, Any] = {
        "channel": "sms",
        "direction": "inbound",
        "kind": "message",
        "provider": "acme-gateway",
        "provider_ref": "MSG-0001",
        "occurred_at": "2026-11-23T10:00:00+09:00",
        "sender": {"identifiers": [{"type": "phone", "value": "+821012345678"}], "display_name": "Kim Minji"},
        "content": {"text": "배송지 변경 부탁드립니다"},
    }
    data.update(overrides)
    return Interaction.model_validate(data)


def ruleset(text: str, **kwargs: Any) -> Ruleset:
    return loads_ruleset(textwrap.dedent(text), **kwargs)


def one_rule(when: str, *, on: str = "interaction.received", timezone: str = "UTC") -> Ruleset:
    """A ruleset with one rule `r` whose `when:` is the given flow-style condition."""
    return ruleset(
        f"timezone: {timezone}\nrules:\n  - {{name: r, on: {on}, when: {when}, then: [{{add_tag: hit}}]}}\n"
    )


def run(rs: Ruleset, trigger: str = "interaction.received", **inputs: Any) -> Evaluation:
    inputs.setdefault("now", NOW)
    if "interaction" not in inputs:
        inputs["interaction"] = interaction()
    return evaluate(rs, trigger, **inputs)
