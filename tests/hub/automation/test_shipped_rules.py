"""Every rule the project ships (the packaged examples, the demo's rules) fires when what it is about
happens, read as the hub reads it: its file loaded as a whole, the profile in the shape the hub hands
rules (hub.profiles.segments.profile_view over a stored row), a schedule at the instant it fires, a
fixed clock. A rule that reads a field nothing writes (the win-back rule once read
`profile.attributes.last_purchase_at`; a POS sale sets `last_purchase_at`) never fires, and fails here.

A rule added to a shipped file without a sample below fails too: add its sample."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.demo.command import DEMO_DIR
from hub.profiles.segments import profile_view
from rules import EXAMPLES_DIR, Ruleset, Schedule, evaluate, load_ruleset, next_fire
from schemas import Interaction

SHIPPED = sorted([*EXAMPLES_DIR.glob("*.yaml"), *(DEMO_DIR / "rules").glob("*.yaml")])
# A fixed clock: Monday 23 November 2026 at midnight in Seoul (the shipped files' timezone). Events
# happen at it; a schedule runs at its first time after it, that Monday.
NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Sample:
    interaction: dict[str, Any] | None = None
    profile: dict[str, Any] = field(default_factory=dict)  # stored columns over a plain profile row
    task: dict[str, Any] | None = None


def _message(channel: str = "sms", text: str = "안녕하세요", **extra: Any) -> dict[str, Any]:
    ident = {"type": "email", "value": "minji@example.com"} if channel == "email" else {
        "type": "phone", "value": "+821012345678"}
    return {"channel": channel, "direction": "inbound", "kind": "message", "provider": "test", "provider_ref": "T-1",
            "occurred_at": "2026-11-22T23:58:00+09:00", "sender": {"identifiers": [ident]},
            "content": {"text": text}, **extra}


SAMPLES: dict[str, Sample] = {
    # rules/examples/default.yaml
    "vip-first": Sample(_message("chat"), {"tier": "vip"}),
    "complaint-to-retention": Sample(_message(text="해지하고 싶어요")),
    "birthday-greeting": Sample(profile={"birthday": date(1990, 11, 23), "timezone": "Asia/Seoul"}),
    "drop-auto-replies": Sample(_message("email", subject="Out of office: back Monday")),
    "sms-acknowledge": Sample(_message("sms")),
    "big-purchase": Sample({**_message("pos"), "kind": "transaction", "content": None, "transaction": {
        "total": "1250000", "currency": "KRW", "items": [{"sku": "TV-55", "unit_price": "1250000"}]}}),
    "sla-breach-escalates": Sample(_message("chat"), task={"queue": "support", "state": "waiting", "priority": 3}),
    "dormant-win-back": Sample(profile={"last_purchase_at": NOW - timedelta(days=120), "frequency": 4}),
    # hub/demo/rules/contact-center.yaml
    "refund-to-billing": Sample(_message(text="환불 부탁드립니다")),
    "delivery-questions": Sample(_message("email", text="배송은 언제 오나요?", subject="주문 1002")),
}


def _rules() -> list[tuple[Path, str]]:
    return [(path, rule.name) for path in SHIPPED for rule in load_ruleset(path).rules]


def _row(**columns: Any) -> dict[str, Any]:
    """A profile as the hub stores it (hub.storage.models.profiles), before profile_view reads it."""
    return {"id": uuid.UUID("0190a000-0000-7000-8000-000000000001"), "display_name": "Kim Minji",
            "attributes": {}, "segments": [], "consents": {}, "preferred_channels": [], "frequency": 0,
            "monetary": 0.0, "created_at": NOW - timedelta(days=400), "updated_at": NOW - timedelta(days=1),
            **columns}


def _fire(ruleset: Ruleset, name: str, sample: Sample, profile: dict[str, Any]) -> list[str]:
    rule = next(r for r in ruleset.rules if r.name == name)
    now = NOW
    if isinstance(rule.on, Schedule):  # the instant the scheduler runs it, the first after the clock
        now = next_fire(rule.on, NOW, ruleset.tz)
    item = Interaction.model_validate(sample.interaction) if sample.interaction is not None else None
    return evaluate(ruleset, rule.trigger, interaction=item, profile=profile_view(profile), task=sample.task,
                    now=now).matched


def test_there_are_shipped_rules_to_check() -> None:
    assert {path.parent.name for path in SHIPPED} == {"examples", "rules"} and len(_rules()) >= 10


@pytest.mark.parametrize(("path", "name"), _rules(), ids=[f"{p.parent.name}/{p.name}:{n}" for p, n in _rules()])
def test_each_shipped_rule_fires_when_what_it_is_about_happens(path: Path, name: str) -> None:
    if name not in SAMPLES:
        pytest.fail(f"{path} has rule {name!r} with no sample in {__file__}: add one that makes it fire")
    sample = SAMPLES[name]
    assert name in _fire(load_ruleset(path), name, sample, _row(**sample.profile))


def test_the_win_back_rule_reads_the_last_purchase_a_sale_writes() -> None:
    ruleset = load_ruleset(EXAMPLES_DIR)
    recent = _row(last_purchase_at=NOW - timedelta(days=10), frequency=4)
    assert "dormant-win-back" not in _fire(ruleset, "dormant-win-back", Sample(), recent)
    never = _row()
    assert "dormant-win-back" not in _fire(ruleset, "dormant-win-back", Sample(), never)
    opted_out = _row(last_purchase_at=NOW - timedelta(days=120), segments=["do-not-contact"])
    assert "dormant-win-back" not in _fire(ruleset, "dormant-win-back", Sample(), opted_out)
