"""Every operator, table-driven: what a rule author writes, the record it meets, whether it fires."""

from __future__ import annotations

import pytest

from rules import MISSING, Operator
from rules.operators import OPERATORS

from .helpers import interaction, one_rule, run

POS = {
    "channel": "pos",
    "kind": "transaction",
    "transaction": {"total": "1250000", "currency": "KRW", "items": [{"sku": "A1", "unit_price": "1250000"}]},
}

CASES = [
    # (id, when, interaction overrides, profile, expected)
    ("eq", "{field: profile.tier, op: eq, value: vip}", {}, {"tier": "vip"}, True),
    ("eq-other", "{field: profile.tier, op: eq, value: vip}", {}, {"tier": "gold"}, False),
    ("eq-missing", "{field: profile.tier, op: eq, value: vip}", {}, {}, False),
    ("eq-enum-field", "{field: interaction.direction, op: eq, value: inbound}", {}, {}, True),
    ("eq-null-is-missing", "{field: profile.tier, op: eq, value: vip}", {}, {"tier": None}, False),
    ("ne", "{field: profile.tier, op: ne, value: vip}", {}, {"tier": "gold"}, True),
    ("ne-same", "{field: profile.tier, op: ne, value: vip}", {}, {"tier": "vip"}, False),
    ("ne-missing", "{field: profile.tier, op: ne, value: vip}", {}, {}, False),
    ("in", "{field: profile.tier, op: in, value: [vip, gold]}", {}, {"tier": "gold"}, True),
    ("in-not", "{field: profile.tier, op: in, value: [vip, gold]}", {}, {"tier": "bronze"}, False),
    ("in-unhashable", "{field: profile.tier, op: in, value: [vip]}", {}, {"tier": ["vip"]}, False),
    ("not_in", "{field: profile.tier, op: not_in, value: [vip]}", {}, {"tier": "gold"}, True),
    ("not_in-member", "{field: profile.tier, op: not_in, value: [vip]}", {}, {"tier": "vip"}, False),
    ("not_in-missing", "{field: profile.tier, op: not_in, value: [vip]}", {}, {}, False),
    ("contains-text", "{field: interaction.content.text, op: contains, value: 변경}", {}, {}, True),
    ("contains-text-no", "{field: interaction.content.text, op: contains, value: 환불}", {}, {}, False),
    (
        "contains-list",
        "{field: profile.attributes.langs, op: contains, value: ko}",
        {},
        {"attributes": {"langs": ["en", "ko"]}},
        True,
    ),
    ("contains-number", "{field: profile.age, op: contains, value: 3}", {}, {"age": 30}, False),
    ("not_contains", "{field: interaction.content.text, op: not_contains, value: 환불}", {}, {}, True),
    ("not_contains-has", "{field: interaction.content.text, op: not_contains, value: 변경}", {}, {}, False),
    ("not_contains-missing", "{field: interaction.subject, op: not_contains, value: x}", {}, {}, False),
    (
        "matches",
        "{field: interaction.content.text, op: matches, value: '(?i)REFUND|환불'}",
        {"content": {"text": "Please refund me"}},
        {},
        True,
    ),
    ("matches-no", "{field: interaction.content.text, op: matches, value: '(?i)refund|환불'}", {}, {}, False),
    ("matches-not-text", "{field: profile.age, op: matches, value: '3'}", {}, {"age": 30}, False),
    ("gt-decimal", "{field: interaction.transaction.total, op: gt, value: 1000000}", POS, {}, True),
    ("gt-equal", "{field: profile.age, op: gt, value: 30}", {}, {"age": 30}, False),
    ("gte-equal", "{field: profile.age, op: gte, value: 30}", {}, {"age": 30}, True),
    ("lt", "{field: profile.age, op: lt, value: 30.5}", {}, {"age": 30}, True),
    ("lte-equal", "{field: profile.age, op: lte, value: 30}", {}, {"age": 30}, True),
    ("lte-more", "{field: profile.age, op: lte, value: 29}", {}, {"age": 30}, False),
    ("gt-text-is-not-a-number", "{field: profile.age, op: gt, value: 10}", {}, {"age": "30"}, False),
    ("gt-bool-is-not-a-number", "{field: profile.vip, op: gt, value: 0}", {}, {"vip": True}, False),
    ("gt-missing", "{field: profile.age, op: gt, value: 10}", {}, {}, False),
    ("lt-date", "{field: profile.birthday, op: lt, value: 2000-01-01}", {}, {"birthday": "1990-11-23"}, True),
    ("gt-datetime", "{field: interaction.occurred_at, op: gt, value: 2026-11-23T00:00:00Z}", {}, {}, True),
    (
        "exists",
        "{field: interaction.metadata.campaign, op: exists}",
        {"metadata": {"campaign": "w"}},
        {},
        True,
    ),
    ("exists-no", "{field: interaction.metadata.campaign, op: exists}", {}, {}, False),
    ("exists-null", "{field: profile.owner, op: exists}", {}, {"owner": None}, False),
    ("missing", "{field: profile.owner, op: missing}", {}, {}, True),
    ("missing-deep", "{field: interaction.transaction.store, op: missing}", {}, {}, True),
    ("missing-present", "{field: profile.owner, op: missing}", {}, {"owner": "agent-7"}, False),
    ("between", "{field: profile.age, op: between, value: [18, 65]}", {}, {"age": 30}, True),
    ("between-edge", "{field: profile.age, op: between, value: [18, 65]}", {}, {"age": 65}, True),
    ("between-out", "{field: profile.age, op: between, value: [18, 65]}", {}, {"age": 66}, False),
    ("within", "{field: interaction.occurred_at, op: within, value: 1h}", {}, {}, True),
    (
        "within-old",
        "{field: profile.last_seen, op: within, value: 30d}",
        {},
        {"last_seen": "2026-10-01T00:00:00Z"},
        False,
    ),
    (
        "older_than",
        "{field: profile.last_seen, op: older_than, value: 30d}",
        {},
        {"last_seen": "2026-10-01T00:00:00Z"},
        True,
    ),
    ("older_than-recent", "{field: interaction.occurred_at, op: older_than, value: 1m}", {}, {}, False),
    (
        "older_than-garbage",
        "{field: profile.last_seen, op: older_than, value: 1d}",
        {},
        {"last_seen": "last week"},
        False,
    ),
    ("has_tag", "{op: has_tag, value: vip}", {"tags": ["vip"]}, {}, True),
    ("has_tag-no", "{op: has_tag, value: vip}", {"tags": ["other"]}, {}, False),
    ("in_segment", "{op: in_segment, value: gold}", {}, {"segments": ["gold"]}, True),
    ("in_segment-no", "{op: in_segment, value: gold}", {}, {"segments": []}, False),
    ("in_segment-no-profile", "{op: in_segment, value: gold}", {}, None, False),
    (
        "metadata",
        "{field: interaction.metadata.order, op: eq, value: 42}",
        {"metadata": {"order": 42}},
        {},
        True,
    ),
    ("list-index", "{field: interaction.sender.identifiers.0.type, op: eq, value: phone}", {}, {}, True),
    ("list-index-out", "{field: interaction.recipients.3.display_name, op: missing}", {}, {}, True),
    (
        "alias",
        "{field: interaction.call.from, op: eq, value: '+8210'}",
        {"kind": "call", "call": {"from": "+8210"}},
        {},
        True,
    ),
]


@pytest.mark.parametrize(
    ("when", "overrides", "profile", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_operator(when: str, overrides: dict, profile: dict | None, expected: bool) -> None:
    result = run(one_rule(when), interaction=interaction(**overrides), profile=profile)
    assert (result.matched == ["r"]) is expected
    if not expected and result.trace:
        # a miss always says which condition failed
        assert result.trace[0].failures


def test_every_operator_has_a_spec_and_a_case() -> None:
    assert set(OPERATORS) == set(Operator)
    tested = {c[1].split("op: ")[1].split(",")[0].rstrip("}").strip() for c in CASES}
    assert tested == {str(op) for op in Operator} - {"is_today"}  # is_today: test_time.py


def test_a_failure_reports_field_op_expected_and_actual() -> None:
    result = run(one_rule("{field: profile.tier, op: eq, value: vip}"), profile={"tier": "gold"})
    (failure,) = result.trace[0].failures
    assert (failure.field, failure.op, failure.expected, failure.actual) == (
        "profile.tier",
        "eq",
        "vip",
        "gold",
    )
    assert str(failure) == "profile.tier eq 'vip': found 'gold'"


def test_a_missing_field_is_reported_as_missing() -> None:
    result = run(one_rule("{field: profile.tier, op: eq, value: vip}"), profile={})
    (failure,) = result.trace[0].failures
    assert failure.actual is MISSING and failure.missing
    assert "missing" in str(failure)
    assert failure.to_dict()["actual"] is None and failure.to_dict()["missing"] is True


def test_paths_never_reach_methods_or_dunders() -> None:
    for when in ("{field: profile.keys, op: exists}", "{field: profile.__class__, op: exists}"):
        assert run(one_rule(when), profile={"tier": "vip"}).matched == []


def test_any_reports_each_failed_branch_and_not_reports_itself() -> None:
    rs = one_rule(
        "{any: [{field: profile.tier, op: eq, value: vip}, {field: profile.age, op: gt, value: 60}]}"
    )
    failures = run(rs, profile={"tier": "gold", "age": 30}).trace[0].failures
    assert [(f.field, f.actual) for f in failures] == [("profile.tier", "gold"), ("profile.age", 30)]
    rs = one_rule("{not: {field: profile.tier, op: eq, value: vip}}")
    assert run(rs, profile={"tier": "gold"}).matched == ["r"]
    (failure,) = run(rs, profile={"tier": "vip"}).trace[0].failures
    assert failure.op == "not" and failure.field is None


def test_a_branch_that_failed_before_another_matched_is_not_blamed() -> None:
    rs = one_rule(
        "{all: [{any: [{field: profile.tier, op: eq, value: vip}, {field: profile.age, op: gt, value: 60}]},"
        " {field: profile.owner, op: exists}]}"
    )
    (failure,) = run(rs, profile={"tier": "gold", "age": 70}).trace[0].failures
    assert failure.field == "profile.owner"
    assert run(rs, profile={"tier": "gold", "age": 70, "owner": "a7"}).trace[0].failures == []
