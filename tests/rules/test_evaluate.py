"""Evaluation order, the channel index, `stop`, and what the trace shows."""

from __future__ import annotations

import json

import pytest

from rules import AddTag, Route, Stop, evaluate, parse_schedule

from .helpers import NOW, interaction, ruleset, run

INDEXED = """
rules:
  - name: sms-only
    on: interaction.received
    when:
      all:
        - {field: interaction.channel, op: eq, value: sms}
        - {field: profile.tier, op: eq, value: vip}
    then: [{add_tag: sms}]
  - name: sms-or-chat
    on: interaction.received
    when: {field: interaction.channel, op: in, value: [sms, chat]}
    then: [{add_tag: sms-or-chat}]
  - name: any-channel
    on: interaction.received
    when: {field: profile.tier, op: eq, value: vip}
    then: [{add_tag: vip}]
  - name: nested-channel-is-not-indexed
    on: interaction.received
    when: {any: [{field: interaction.channel, op: eq, value: sms}, {field: profile.tier, op: eq, value: x}]}
    then: [{add_tag: nested}]
  - name: on-sent
    on: interaction.sent
    then: [{add_tag: sent}]
"""


def test_a_rule_pinned_to_sms_never_meets_an_email() -> None:
    rs = ruleset(INDEXED)
    email = run(rs, interaction=interaction(channel="email"), profile={"tier": "vip"})
    assert [t.name for t in email.trace] == ["any-channel", "nested-channel-is-not-indexed"]
    sms = run(rs, interaction=interaction(channel="sms"), profile={"tier": "vip"})
    assert [t.name for t in sms.trace] == [
        "sms-only",
        "sms-or-chat",
        "any-channel",
        "nested-channel-is-not-indexed",
    ]
    assert sms.matched == ["sms-only", "sms-or-chat", "any-channel", "nested-channel-is-not-indexed"]
    chat = run(rs, interaction=interaction(channel="chat"), profile={"tier": "gold"})
    assert [t.name for t in chat.trace] == ["sms-or-chat", "any-channel", "nested-channel-is-not-indexed"]
    assert chat.matched == ["sms-or-chat"]


def test_an_event_meets_only_its_triggers_rules() -> None:
    rs = ruleset(INDEXED)
    assert [t.name for t in run(rs, "interaction.sent").trace] == ["on-sent"]
    assert run(rs, "profile.merged").trace == []


def test_contradictory_channel_pins_never_fire_and_warn() -> None:
    rs = ruleset(
        """
        rules:
          - name: never
            on: interaction.received
            when:
              all:
                - {field: interaction.channel, op: eq, value: sms}
                - {field: interaction.channel, op: in, value: [email]}
            then: [stop]
        """
    )
    assert run(rs, interaction=interaction(channel="sms")).trace == []
    assert run(rs, interaction=interaction(channel="email")).trace == []
    assert "can never fire" in rs.warnings[0]


ORDERED = """
rules:
  - {name: low, on: interaction.received, priority: 1, then: [{add_tag: low}]}
  - {name: high, on: interaction.received, priority: 9, then: [{route: {queue: vip}}]}
  - {name: mid-a, on: interaction.received, priority: 5, then: [{add_tag: a}]}
  - {name: mid-b, on: interaction.received, priority: 5, then: [{add_tag: b}]}
"""


def test_priority_descending_then_file_order() -> None:
    result = run(ruleset(ORDERED))
    assert result.matched == ["high", "mid-a", "mid-b", "low"]
    assert result.actions == [Route(queue="vip"), AddTag("a"), AddTag("b"), AddTag("low")]
    assert result.first(Route) == Route(queue="vip")


@pytest.mark.parametrize("stopper", ["stop: true", "then: [{add_tag: a}, stop]"])
def test_stop_ends_evaluation_after_its_own_actions(stopper: str) -> None:
    text = ORDERED.replace(
        "{name: mid-a, on: interaction.received, priority: 5, then: [{add_tag: a}]}",
        "{name: mid-a, on: interaction.received, priority: 5, "
        + ("then: [{add_tag: a}], stop: true}" if stopper == "stop: true" else stopper + "}"),
    )
    result = run(ruleset(text))
    assert result.matched == ["high", "mid-a"]
    assert [t.name for t in result.trace] == ["high", "mid-a"]
    assert result.stopped_by == "mid-a"
    assert Stop() not in result.actions and result.actions[-1] == AddTag("a")


def test_a_rule_that_does_not_match_does_not_stop() -> None:
    text = """
    rules:
      - {name: stopper, on: interaction.received, priority: 5, stop: true,
         when: {field: profile.tier, op: eq, value: vip}, then: [{add_tag: a}]}
      - {name: later, on: interaction.received, then: [{add_tag: b}]}
    """
    assert run(ruleset(text), profile={"tier": "gold"}).matched == ["later"]
    assert run(ruleset(text), profile={"tier": "vip"}).matched == ["stopper"]


def test_has_tag_sees_tags_added_by_higher_priority_rules() -> None:
    text = """
    rules:
      - {name: tagger, on: interaction.received, priority: 5,
         when: {field: interaction.content.text, op: matches, value: 환불}, then: [{add_tag: complaint}]}
      - {name: follower, on: interaction.received, when: {op: has_tag, value: complaint},
         then: [{route: retention}]}
      - {name: segmenter, on: interaction.received, priority: 3, then: [{add_segment: watch}]}
      - {name: seg-follower, on: interaction.received, when: {op: in_segment, value: watch}, then: [{add_tag: w}]}
    """
    rs = ruleset(text)
    assert run(rs, interaction=interaction(content={"text": "환불 해주세요"})).matched == [
        "tagger",
        "segmenter",
        "follower",
        "seg-follower",
    ]
    assert run(rs).matched == ["segmenter", "seg-follower"]


def test_inputs_are_not_changed() -> None:
    rs = ruleset("rules:\n  - {name: a, on: interaction.received, then: [{add_tag: x}, {add_segment: y}]}\n")
    item, profile = interaction(), {"segments": []}
    before = item.model_dump()
    run(rs, interaction=item, profile=profile)
    assert item.model_dump() == before and profile == {"segments": []}


def test_scheduled_rules_are_evaluated_by_their_schedule_trigger() -> None:
    rs = ruleset(
        """
        rules:
          - {name: nine, on: {schedule: "daily 09:00"}, when: {field: profile.tier, op: eq, value: vip},
             then: [{send_message: {template: hi, purpose: marketing}}]}
          - {name: ten, on: {schedule: "0 10 * * *"}, then: [{add_segment: ten}]}
        """
    )
    assert set(rs.schedules) == {"schedule:0 9 * * *", "schedule:0 10 * * *"}
    key = parse_schedule("daily 09:00").trigger
    result = evaluate(rs, key, profile={"tier": "vip"}, now=NOW)
    assert result.matched == ["nine"] and result.actions[0].purpose == "marketing"
    # spelled differently, same schedule
    assert evaluate(rs, "schedule:0 9 * * *", profile={"tier": "vip"}, now=NOW).matched == ["nine"]
    assert evaluate(rs, "schedule:daily 09:00", profile={"tier": "vip"}, now=NOW).matched == ["nine"]


def test_evaluation_serializes_to_json_for_the_api() -> None:
    rs = ruleset(INDEXED)
    data = run(rs, interaction=interaction(channel="sms"), profile={"tier": "gold"}).to_dict()
    json.dumps(data)  # must not raise
    first = data["trace"][0]
    assert first["rule"] == "sms-only" and first["matched"] is False
    assert first["failures"] == [
        {
            "field": "profile.tier",
            "op": "eq",
            "expected": "vip",
            "actual": "gold",
            "missing": False,
            "line": 8,
        }
    ]
    assert data["actions"] == [
        {"action": "add_tag", "tag": "sms-or-chat"},
        {"action": "add_tag", "tag": "nested"},
    ]


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        run(ruleset(INDEXED), now=NOW.replace(tzinfo=None))
