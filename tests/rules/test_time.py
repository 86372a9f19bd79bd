"""Time: is_today in the customer's timezone, durations, schedules (with DST), and timers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from rules import (
    Escalate,
    SpecError,
    StartTimer,
    cancels,
    due_at,
    fire_timer,
    format_duration,
    next_fire,
    parse_duration,
    parse_schedule,
)

from .helpers import interaction, one_rule, ruleset, run

SEOUL, NEW_YORK = ZoneInfo("Asia/Seoul"), ZoneInfo("America/New_York")
# 01:00 on 23 November in Seoul, still 22 November in UTC.
LATE_UTC = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)
BIRTHDAY = "{field: profile.birthday, op: is_today}"


@pytest.mark.parametrize(
    ("profile", "ruleset_tz", "expected"),
    [
        ({"birthday": date(1990, 11, 23), "timezone": "Asia/Seoul"}, "UTC", True),
        ({"birthday": date(1990, 11, 23), "timezone": "UTC"}, "Asia/Seoul", False),
        ({"birthday": date(1990, 11, 23)}, "Asia/Seoul", True),  # no profile zone: the ruleset's
        ({"birthday": date(1990, 11, 23)}, "UTC", False),
        ({"birthday": date(1990, 11, 23), "timezone": "Mars/Base"}, "Asia/Seoul", True),  # bad zone ignored
        ({"birthday": "1990-11-23", "timezone": "Asia/Seoul"}, "UTC", True),  # JSON profiles carry strings
        ({"birthday": date(1990, 11, 22)}, "UTC", True),
        ({"birthday": "not a date"}, "UTC", False),
        ({}, "UTC", False),
    ],
)
def test_birthday_is_today_in_the_customers_timezone(profile: dict, ruleset_tz: str, expected: bool) -> None:
    rs = one_rule(BIRTHDAY, on='{schedule: "daily 09:00"}', timezone=ruleset_tz)
    result = run(rs, "schedule:0 9 * * *", interaction=None, profile=profile, now=LATE_UTC)
    assert (result.matched == ["r"]) is expected


@pytest.mark.parametrize(
    ("today", "expected"), [(date(2027, 2, 28), True), (date(2028, 2, 28), False), (date(2028, 2, 29), True)]
)
def test_leap_day_birthdays_are_kept_on_the_28th_in_common_years(today: date, expected: bool) -> None:
    rs = one_rule(BIRTHDAY, on="profile.updated")
    now = datetime.combine(today, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    assert (
        run(rs, "profile.updated", profile={"birthday": date(2000, 2, 29)}, now=now).matched == ["r"]
    ) is expected


def test_datetime_is_today_compares_calendar_days_in_the_customers_zone() -> None:
    rs = one_rule("{field: interaction.occurred_at, op: is_today}")
    late_in_new_york = interaction(occurred_at="2026-11-22T23:30:00-05:00")
    now = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
    assert run(rs, interaction=late_in_new_york, profile={"timezone": "Asia/Seoul"}, now=now).matched == ["r"]
    assert (
        run(rs, interaction=late_in_new_york, profile={"timezone": "America/New_York"}, now=now).matched == []
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("2h", 7200),
        ("30d", 2_592_000),
        ("1w", 604_800),
        ("1h30m", 5400),
        ("0s", 0),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text", ["", "10", "m", "1.5h", "-1d", "30m2h", "1h1h", "3 days", "1y", "99999d", None, 5]
)
def test_bad_durations_are_spec_errors(text: object) -> None:
    with pytest.raises(SpecError):
        parse_duration(text)


def test_format_duration_reads_back() -> None:
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert parse_duration(format_duration(timedelta(days=9, seconds=5))) == timedelta(days=9, seconds=5)


@pytest.mark.parametrize(
    ("seen_ago", "within", "older"), [(timedelta(days=29), True, False), (timedelta(days=31), False, True)]
)
def test_within_and_older_than_are_relative_to_now(seen_ago: timedelta, within: bool, older: bool) -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    profile = {"last_seen": now - seen_ago}
    assert (
        bool(
            run(
                one_rule("{field: profile.last_seen, op: within, value: 30d}"), profile=profile, now=now
            ).matched
        )
        is within
    )
    assert (
        bool(
            run(
                one_rule("{field: profile.last_seen, op: older_than, value: 30d}"), profile=profile, now=now
            ).matched
        )
        is older
    )


@pytest.mark.parametrize(
    ("text", "cron"),
    [
        ("daily 09:00", "0 9 * * *"),
        ("daily  7:05", "5 7 * * *"),
        ("*/15 9-17 * * mon-fri", "0,15,30,45 9-17 * * 1-5"),
        ("0 0 1,15 * 7", "0 0 1,15 * 0"),
        ("0 12 * JAN-mar SUN", "0 12 * 1-3 0"),
    ],
)
def test_parse_schedule_normalizes(text: str, cron: str) -> None:
    assert parse_schedule(text).cron == cron


@pytest.mark.parametrize(
    "text",
    [
        "daily 24:00",
        "daily 9",
        "weekly",
        "0 9 * *",
        "60 * * * *",
        "* * 0 * *",
        "* * * 13 *",
        "1-0 * * * *",
        "*/0 * * * *",
        "0 0 31 2 *",
        "0 0 * * funday",
    ],
)
def test_bad_schedules_are_spec_errors(text: str) -> None:
    with pytest.raises(SpecError):
        parse_schedule(text)


def test_daily_fires_at_local_wall_time() -> None:
    after = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 10:00 in Seoul: today's run has passed
    fire = next_fire(parse_schedule("daily 09:00"), after, SEOUL)
    assert fire == datetime(2026, 11, 24, 9, 0, tzinfo=SEOUL)
    assert next_fire(parse_schedule("daily 09:00"), fire, SEOUL) == datetime(2026, 11, 25, 9, 0, tzinfo=SEOUL)


def test_a_wall_time_skipped_by_dst_fires_after_the_gap() -> None:
    # 8 March 2026: New York clocks jump from 02:00 to 03:00.
    fire = next_fire(parse_schedule("30 2 * * *"), datetime(2026, 3, 8, 5, 0, tzinfo=UTC), NEW_YORK)
    assert fire.astimezone(UTC) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 03:30 EDT


def test_a_repeated_wall_time_fires_once() -> None:
    # 1 November 2026: New York clocks go back from 02:00 to 01:00; 01:30 happens twice.
    first = next_fire(parse_schedule("30 1 * * *"), datetime(2026, 11, 1, 4, 0, tzinfo=UTC), NEW_YORK)
    assert first.astimezone(UTC) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    following = next_fire(parse_schedule("30 1 * * *"), first, NEW_YORK)
    assert following.date() == date(2026, 11, 2)


def test_day_of_month_and_weekday_either_matches_as_in_cron() -> None:
    schedule = parse_schedule("0 0 13 * fri")
    fire = next_fire(schedule, datetime(2026, 11, 1, tzinfo=UTC), UTC)
    assert fire == datetime(2026, 11, 6, tzinfo=UTC)  # the first Friday, before the 13th
    assert next_fire(schedule, fire, UTC) == datetime(2026, 11, 13, tzinfo=UTC)


def test_leap_day_schedule_waits_for_a_leap_year() -> None:
    fire = next_fire(parse_schedule("0 0 29 2 *"), datetime(2026, 3, 1, tzinfo=UTC), UTC)
    assert fire == datetime(2028, 2, 29, tzinfo=UTC)


def test_next_fire_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError):
        next_fire(parse_schedule("daily 09:00"), datetime(2026, 1, 1), UTC)


TIMER_RULES = """
rules:
  - name: sms-ack
    on: interaction.received
    then:
      - auto_reply: thanks
      - start_timer:
          name: no-reply
          after: 10m
          cancel_on: [interaction.sent]
          unless: {field: task.state, op: in, value: [assigned, completed]}
          then:
            - escalate: {queue: supervisors}
"""


def test_a_matched_rule_returns_a_start_timer_as_data() -> None:
    rs = ruleset(TIMER_RULES)
    timer = run(rs).first(StartTimer)
    assert (timer.rule, timer.name, timer.after) == ("sms-ack", "no-reply", timedelta(minutes=10))
    assert rs.timer("sms-ack", "no-reply") == timer
    assert rs.timer("sms-ack", "other") is None and rs.timer("gone", "no-reply") is None
    started = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    assert due_at(timer, started) == started + timedelta(minutes=10)
    assert cancels(timer, "interaction.sent") and not cancels(timer, "message.delivered")


@pytest.mark.parametrize(
    ("task", "fired"),
    [({"state": "waiting"}, True), ({"state": "assigned"}, False), (None, True), ({}, True)],
)
def test_a_due_timer_fires_unless_its_condition_holds(task: dict | None, fired: bool) -> None:
    rs = ruleset(TIMER_RULES)
    timer = rs.timer("sms-ack", "no-reply")
    outcome = fire_timer(
        rs, timer, interaction=interaction(), task=task, now=datetime(2026, 11, 23, 1, 10, tzinfo=UTC)
    )
    assert outcome.fired is fired and outcome.unless_held is not fired
    assert outcome.actions == ((Escalate(queue="supervisors"),) if fired else ())
    if fired and task is not None:
        assert outcome.why[0].field == "task.state"
