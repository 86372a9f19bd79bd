"""Property tests: the parsers and the loader never fail with anything but their own errors."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import (
    RulesError,
    SpecError,
    format_duration,
    loads_ruleset,
    next_fire,
    parse_duration,
    parse_schedule,
)
from rules.durations import MAX_DURATION

from .helpers import one_rule, run

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.integers(min_value=0, max_value=int(MAX_DURATION.total_seconds())))
def test_duration_format_then_parse_round_trips(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


@FAST
@given(st.text(alphabet="0123456789wdhms .-+:xy", max_size=20) | st.text(max_size=10))
def test_duration_parser_only_raises_spec_error(text: str) -> None:
    try:
        delta = parse_duration(text)
    except SpecError:
        return
    assert timedelta(0) <= delta <= MAX_DURATION


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    single = number.map(str)
    ranged = st.tuples(number, number).map(lambda p: f"{min(p)}-{max(p)}")
    stepped = st.tuples(st.sampled_from(["*", f"{low}-{high}"]), st.integers(1, high)).map(
        lambda p: f"{p[0]}/{p[1]}"
    )
    item = single | ranged | stepped
    return st.just("*") | st.lists(item, min_size=1, max_size=3).map(",".join)


CRON = st.tuples(_field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12), _field(0, 6)).map(" ".join)
AFTER = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC))


def _fires_at(schedule, t: datetime) -> bool:
    return t.minute in schedule.minutes and t.hour in schedule.hours and schedule.matches_day(t.date())


@FAST
@given(CRON, AFTER)
def test_next_fire_is_the_first_matching_minute_after(cron: str, after: datetime) -> None:
    schedule = parse_schedule(cron)
    fire = next_fire(schedule, after, UTC)
    assert fire > after and fire.second == 0 and _fires_at(schedule, fire)
    gap = fire - after
    if gap <= timedelta(hours=6):  # brute force the gap: no earlier minute may match
        t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while t < fire:
            assert not _fires_at(schedule, t), t
            t += timedelta(minutes=1)


@FAST
@given(st.text(alphabet="0123456789*/-, abcdefjmnorstuy:", max_size=30))
def test_schedule_parser_only_raises_spec_error(text: str) -> None:
    try:
        parse_schedule(text)
    except SpecError:
        pass


WORDS = [
    "rules",
    "name",
    "on",
    "when",
    "then",
    "priority",
    "stop",
    "all",
    "any",
    "not",
    "field",
    "op",
    "value",
    "schedule",
    "route",
    "queue",
    "add_tag",
    "start_timer",
    "after",
    "unless",
    "set_profile",
    "send_message",
    "template",
    "purpose",
    "interaction.received",
    "interaction.channel",
    "profile.tier",
    "eq",
    "in",
    "matches",
    "within",
    "is_today",
    "between",
    "sms",
    "vip",
    "10m",
    "daily 09:00",
    "timezone",
    "Asia/Seoul",
    "tier",
]
SCALARS = st.sampled_from(WORDS) | st.integers(-5, 200) | st.booleans() | st.none() | st.text(max_size=8)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(WORDS), inner, max_size=5),
    max_leaves=30,
)
RULE = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["a", "b", "c"]),
        "on": st.sampled_from(["interaction.received", "profile.created"]),
        "then": DOCS,
    },
    optional={"when": DOCS, "priority": SCALARS, "stop": SCALARS},
)
RULESETS = st.fixed_dictionaries({"rules": st.lists(RULE, max_size=3)}, optional={"timezone": SCALARS})


@FAST
@given(RULESETS | DOCS)
def test_loader_only_raises_rules_error(doc: object) -> None:
    try:
        rs = loads_ruleset(yaml.safe_dump(doc, allow_unicode=True))
    except RulesError as exc:
        assert exc.issues and all(i.message for i in exc.issues)
        return
    # whatever loaded must also evaluate without raising
    run(rs, profile={"tier": "vip"})


@FAST
@given(st.text(alphabet="rules:-{}[]&*!|>#'\" \n\tnameon.x0123", max_size=80))
def test_loader_survives_yaml_garbage(text: str) -> None:
    try:
        loads_ruleset(text)
    except RulesError:
        pass


_rules = functools.lru_cache(one_rule)


@FAST
@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(["90s", "10m", "2h", "30d"]),
)
def test_within_and_older_than_split_every_instant(seen: datetime, span: str) -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    profile = {"seen": seen}
    within = run(
        _rules(f"{{field: profile.seen, op: within, value: {span}}}"), profile=profile, now=now
    ).matched
    older = run(
        _rules(f"{{field: profile.seen, op: older_than, value: {span}}}"), profile=profile, now=now
    ).matched
    assert bool(within) != bool(older)
