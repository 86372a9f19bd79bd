"""Tables for issue 5's acceptance: every operator on a missing field and on the wrong type, every
action as typed data, and the midnight edges of is_today between Seoul and UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from rules import (
    Action,
    AddSegment,
    AddTag,
    AutoReply,
    Escalate,
    NoRoute,
    Operator,
    Publish,
    Route,
    SendMessage,
    SetPriority,
    SetProfile,
    StartTimer,
    action_to_dict,
)
from rules.actions import ACTION_NAMES

from .helpers import interaction, one_rule, ruleset, run

# One condition per operator, on a profile field (has_tag / in_segment read their fixed fields).
WHEN = {
    Operator.EQ: "{field: profile.x, op: eq, value: vip}",
    Operator.NE: "{field: profile.x, op: ne, value: vip}",
    Operator.IN: "{field: profile.x, op: in, value: [vip, 3]}",
    Operator.NOT_IN: "{field: profile.x, op: not_in, value: [vip]}",
    Operator.CONTAINS: "{field: profile.x, op: contains, value: vi}",
    Operator.NOT_CONTAINS: "{field: profile.x, op: not_contains, value: vi}",
    Operator.MATCHES: "{field: profile.x, op: matches, value: '^v'}",
    Operator.GT: "{field: profile.x, op: gt, value: 3}",
    Operator.GTE: "{field: profile.x, op: gte, value: 3}",
    Operator.LT: "{field: profile.x, op: lt, value: 3}",
    Operator.LTE: "{field: profile.x, op: lte, value: 3}",
    Operator.EXISTS: "{field: profile.x, op: exists}",
    Operator.MISSING: "{field: profile.x, op: missing}",
    Operator.BETWEEN: "{field: profile.x, op: between, value: [1, 5]}",
    Operator.WITHIN: "{field: profile.x, op: within, value: 30d}",
    Operator.OLDER_THAN: "{field: profile.x, op: older_than, value: 30d}",
    Operator.IS_TODAY: "{field: profile.x, op: is_today}",
    Operator.HAS_TAG: "{op: has_tag, value: vip}",
    Operator.IN_SEGMENT: "{op: in_segment, value: vip}",
}


def _fires(op: Operator, profile: object, item: object = None) -> bool:
    kwargs = {"interaction": item} if item is not None else {}
    return run(one_rule(WHEN[op]), profile=profile, **kwargs).matched == ["r"]


def test_the_tables_cover_every_operator() -> None:
    assert set(WHEN) == set(Operator)


@pytest.mark.parametrize("op", list(Operator), ids=str)
@pytest.mark.parametrize("profile", [{}, {"x": None}, None], ids=["absent", "null", "no-profile"])
def test_a_missing_field_fails_every_operator_but_missing(op: Operator, profile: object) -> None:
    assert _fires(op, profile, interaction(tags=[])) is (op is Operator.MISSING)


# (operator, a value of the wrong type for it): never a match, never an exception.
MISMATCHES = [
    (Operator.EQ, 3),  # number vs text
    (Operator.EQ, ["vip"]),
    (Operator.NE, ["vip"]),  # a list is not "not vip" text: but it is present and different
    (Operator.IN, ["vip"]),  # unhashable
    (Operator.IN, {"vip": 1}),
    (Operator.NOT_IN, {"a": 1}),
    (Operator.CONTAINS, 12345),
    (Operator.NOT_CONTAINS, 12345),
    (Operator.MATCHES, 7),
    (Operator.MATCHES, ["vip"]),
    (Operator.GT, "12"),  # text that looks like a number
    (Operator.GTE, True),  # a bool is not a number
    (Operator.LT, "1"),
    (Operator.LTE, [1]),
    (Operator.BETWEEN, "3"),
    (Operator.WITHIN, 12345),
    (Operator.WITHIN, "soon"),
    (Operator.OLDER_THAN, "long ago"),
    (Operator.OLDER_THAN, 3.5),
    (Operator.IS_TODAY, 1123),
    (Operator.IS_TODAY, "23 November"),
]


@pytest.mark.parametrize(("op", "actual"), MISMATCHES, ids=[f"{op}-{type(a).__name__}" for op, a in MISMATCHES])
def test_a_value_of_the_wrong_type_does_not_match(op: Operator, actual: object) -> None:
    expected = op is Operator.NE or op is Operator.NOT_IN  # present and not equal / not a member
    assert _fires(op, {"x": actual}) is expected


@pytest.mark.parametrize(
    ("op", "tags", "segments"),
    [(Operator.HAS_TAG, "vip", None), (Operator.HAS_TAG, {"vip": 1}, None), (Operator.IN_SEGMENT, None, "vip")],
)
def test_tags_and_segments_of_the_wrong_type_do_not_match(op: Operator, tags: object, segments: object) -> None:
    # interaction.tags is a typed list, so the wrong type can only come from the profile or metadata
    profile = {"segments": segments} if segments is not None else {}
    assert _fires(op, profile) is False


# (YAML action, the typed action, its JSON form). Durations are seconds in JSON.
ACTIONS: list[tuple[str, Action, dict]] = [
    ("{route: vip}", Route("vip"), {"queue": "vip", "priority": None, "skills": [], "owner_first": False}),
    (
        "{route: {queue: vip, priority: 10, skills: [ko, billing], owner_first: true}}",
        Route("vip", 10, ("ko", "billing"), True),
        {"queue": "vip", "priority": 10, "skills": ["ko", "billing"], "owner_first": True},
    ),
    ("{set_priority: 7}", SetPriority(7), {"priority": 7}),
    ("{add_tag: complaint}", AddTag("complaint"), {"tag": "complaint"}),
    (
        "{set_profile: {tier: gold, birthday: 1990-11-23, attributes.langs: [ko, en]}}",
        None,  # one action per field, checked below
        {},
    ),
    ("{add_segment: high-value}", AddSegment("high-value"), {"segment": "high-value"}),
    (
        "{send_message: {template: birthday, purpose: marketing}}",
        SendMessage("birthday", "marketing"),
        {"template": "birthday", "purpose": "marketing", "channel": "auto", "delay": 0.0},
    ),
    (
        "{send_message: {template: t, purpose: transactional, channel: [sms, email], delay: 1h}}",
        SendMessage("t", "transactional", ("sms", "email"), timedelta(hours=1)),
        {"template": "t", "purpose": "transactional", "channel": ["sms", "email"], "delay": 3600.0},
    ),
    ("{auto_reply: thanks}", AutoReply("thanks"), {"template": "thanks"}),
    ("{publish: erp.basket.large}", Publish("erp.basket.large"), {"event_type": "erp.basket.large"}),
    ("{escalate: supervisors}", Escalate("supervisors"), {"queue": "supervisors", "skills": []}),
    ("{escalate: {skills: [ko]}}", Escalate(None, ("ko",)), {"queue": None, "skills": ["ko"]}),
    ("no_route", NoRoute(), {}),
]


@pytest.mark.parametrize(("yaml", "action", "json"), ACTIONS, ids=[a[0].split(":")[0].lstrip("{") for a in ACTIONS])
def test_every_action_is_typed_data_returned_by_evaluate(yaml: str, action: Action | None, json: dict) -> None:
    rs = ruleset(f"rules:\n  - {{name: r, on: interaction.received, then: [{yaml}]}}\n")
    result = run(rs)
    if action is None:  # set_profile: one SetProfile per field, values typed
        assert result.actions == [
            SetProfile("tier", "gold"),
            SetProfile("birthday", date(1990, 11, 23)),
            SetProfile("attributes.langs", ("ko", "en")),
        ]
        assert action_to_dict(result.actions[1]) == {"action": "set_profile", "field": "birthday",
                                                     "value": "1990-11-23"}
        return
    assert result.actions == [action]
    assert action_to_dict(action) == {"action": action.kind, **json}


def test_stop_and_start_timer_complete_the_action_table() -> None:
    rs = ruleset(
        """
        rules:
          - name: r
            on: interaction.received
            then:
              - start_timer: {name: t, after: 10m, then: [{escalate: supervisors}], cancel_on: [interaction.sent]}
              - stop
          - {name: later, on: interaction.received, then: [{add_tag: never}]}
        """
    )
    result = run(rs)
    (timer,) = result.actions
    assert isinstance(timer, StartTimer) and timer.then == (Escalate("supervisors"),)
    assert result.stopped_by == "r" and result.matched == ["r"]
    assert action_to_dict(timer)["after"] == 600.0 and action_to_dict(timer)["then"][0]["action"] == "escalate"
    kinds = {a[1].kind for a in ACTIONS if a[1] is not None} | {"set_profile", "start_timer", "stop"}
    assert kinds == set(ACTION_NAMES)


# is_today at the midnights between Seoul (UTC+9) and UTC, for a birthday on 23 November.
KST = timedelta(hours=9)
EDGES = [
    # (instant, in Seoul it is the 23rd?, in UTC it is the 23rd?)
    (datetime(2026, 11, 23, 0, 30) - KST, True, False),  # 00:30 KST: today in Seoul, still yesterday in UTC
    (datetime(2026, 11, 23, 0, 0) - KST, True, False),  # midnight in Seoul, exactly
    (datetime(2026, 11, 22, 23, 59, 59) - KST, False, False),  # a second before it
    (datetime(2026, 11, 23, 8, 59) - KST, True, False),  # 23:59 on the 22nd in UTC
    (datetime(2026, 11, 23, 9, 0) - KST, True, True),  # midnight in UTC: both agree
    (datetime(2026, 11, 24, 0, 30) - KST, False, True),  # 00:30 KST next day: over in Seoul, not in UTC
]


@pytest.mark.parametrize(("naive_utc", "in_seoul", "in_utc"), EDGES, ids=[str(e[0]) for e in EDGES])
def test_a_birthday_at_the_midnights_is_today_in_the_customers_zone(
    naive_utc: datetime, in_seoul: bool, in_utc: bool
) -> None:
    now = naive_utc.replace(tzinfo=UTC)
    rs = one_rule("{field: profile.birthday, op: is_today}", on='{schedule: "daily 00:00"}')
    for zone, expected in (("Asia/Seoul", in_seoul), ("UTC", in_utc)):
        profile = {"birthday": date(1990, 11, 23), "timezone": zone}
        result = run(rs, "schedule:0 0 * * *", interaction=None, profile=profile, now=now)
        assert (result.matched == ["r"]) is expected, zone
