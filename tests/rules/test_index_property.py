"""Property: the indexed evaluator fires exactly what a naive evaluate-every-rule loop fires.

The naive loop lives here, not in rules/: it walks the AST (Predicate / AllOf / AnyOf / Not) of
every rule on the trigger, in priority-then-file order, with no index, no channel-pin removal and
no compiled closures, so any shortcut the compiler takes (bucketing by channel, dropping the pinned
predicates, inlining conjunctions) has to agree with the plain meaning of the rules.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import AddSegment, AddTag, AllOf, AnyOf, Not, Predicate, Ruleset, Stop, evaluate, loads_ruleset
from rules.evaluate import Env

from .helpers import interaction

CHANNELS = ["sms", "chat", "email", "voice", "pos", "fax"]
TAGS = ["vip", "complaint", "w"]
SEGMENTS = ["gold", "watch"]
TRIGGERS = ["interaction.received", "interaction.sent", "profile.created"]
SCHEDULE = "schedule:0 9 * * *"


# --- the naive reference ------------------------------------------------------------------------


def _holds(cond: Any, env: Env) -> bool:
    match cond:
        case Predicate():
            return bool(cond.test(cond.get(env), env))
        case AllOf(items=items):
            return all(_holds(i, env) for i in items)
        case AnyOf(items=items):
            return any(_holds(i, env) for i in items)
        case Not(item=item):
            return not _holds(item, env)
    raise TypeError(cond)


def naive(rs: Ruleset, trigger: str, *, interaction: Any, profile: Any, now: datetime) -> tuple[list, list]:
    env = Env(interaction, profile, None, now, rs.tz)
    order = sorted(range(len(rs.rules)), key=lambda i: (-rs.rules[i].priority, i))
    matched, actions = [], []
    for rule in (rs.rules[i] for i in order):
        if rule.trigger != trigger:
            continue
        if rule.when is not None and not _holds(rule.when, env):
            continue
        matched.append(rule.name)
        actions.extend(a for a in rule.then if not isinstance(a, Stop))
        env.added_tags |= {a.tag for a in rule.then if isinstance(a, AddTag)}
        env.added_segments |= {a.segment for a in rule.then if isinstance(a, AddSegment)}
        if rule.stop or any(isinstance(a, Stop) for a in rule.then):
            break
    return matched, actions


# --- random rulesets ----------------------------------------------------------------------------


def _pred(field: str, op: str, value: Any = None) -> dict[str, Any]:
    out = {"field": field, "op": op} if field else {"op": op}
    if value is not None:
        out["value"] = value
    return out


CHANNEL_PIN = st.one_of(
    st.sampled_from(CHANNELS).map(lambda c: _pred("interaction.channel", "eq", c)),
    st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=3, unique=True).map(
        lambda cs: _pred("interaction.channel", "in", cs)
    ),
    st.sampled_from(CHANNELS).map(lambda c: _pred("interaction.channel", "ne", c)),
    st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=2, unique=True).map(
        lambda cs: _pred("interaction.channel", "not_in", cs)
    ),
)
PROFILE_PREDICATES = st.one_of(
    st.sampled_from(["vip", "gold"]).map(lambda t: _pred("profile.tier", "eq", t)),
    st.just(_pred("profile.tier", "in", ["vip", "gold"])),
    st.sampled_from(["exists", "missing"]).map(lambda op: _pred("profile.tier", op)),
    st.integers(10, 70).map(lambda n: _pred("profile.age", "gt", n)),
    st.integers(10, 70).map(lambda n: _pred("profile.age", "lte", n)),
    st.just(_pred("profile.age", "between", [18, 40])),
    st.just(_pred("profile.birthday", "is_today")),
    st.sampled_from(["1d", "30d"]).map(lambda d: _pred("profile.last_seen", "within", d)),
    st.sampled_from(SEGMENTS).map(lambda s: _pred("", "in_segment", s)),
)
INTERACTION_PREDICATES = st.one_of(
    CHANNEL_PIN,
    st.sampled_from(["환불", "refund", "cancel"]).map(lambda w: _pred("interaction.content.text", "contains", w)),
    st.just(_pred("interaction.content.text", "matches", "(?i)refund|해지")),
    st.sampled_from(TAGS).map(lambda t: _pred("", "has_tag", t)),
    st.just(_pred("interaction.metadata.campaign", "exists")),
    st.just(_pred("interaction.direction", "eq", "inbound")),
)


def _conditions(leaves: st.SearchStrategy) -> st.SearchStrategy:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"all": xs}),
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"any": xs}),
            inner.map(lambda x: {"not": x}),
        ),
        max_leaves=5,
    )


ACTIONS = st.one_of(
    st.sampled_from(TAGS).map(lambda t: {"add_tag": t}),
    st.sampled_from(SEGMENTS).map(lambda s: {"add_segment": s}),
    st.sampled_from(["vip", "retention"]).map(lambda q: {"route": {"queue": q}}),
    st.integers(0, 9).map(lambda p: {"set_priority": p}),
    st.just("stop"),
)


@st.composite
def rule_docs(draw: st.DrawFn, index: int) -> dict[str, Any]:
    scheduled = draw(st.integers(0, 5)) == 0
    leaves = PROFILE_PREDICATES if scheduled else st.one_of(PROFILE_PREDICATES, INTERACTION_PREDICATES)
    doc: dict[str, Any] = {
        "name": f"r{index}",
        "on": {"schedule": "daily 09:00"} if scheduled else draw(st.sampled_from(TRIGGERS)),
        "then": draw(st.lists(ACTIONS, min_size=1, max_size=3)),
        "priority": draw(st.integers(0, 3)),  # few values: ties keep file order
    }
    shape = draw(st.integers(0, 3))
    if shape == 1:
        doc["when"] = draw(_conditions(leaves))
    elif shape >= 2 and not scheduled:
        # a top-level conjunction with channel pins: what the index buckets on
        pins = draw(st.lists(CHANNEL_PIN, min_size=1, max_size=2))
        doc["when"] = {"all": [*pins, *draw(st.lists(_conditions(leaves), max_size=2))]}
    if draw(st.booleans()) and draw(st.booleans()):
        doc["stop"] = True
    return doc


@st.composite
def rulesets(draw: st.DrawFn) -> Ruleset:
    count = draw(st.integers(1, 10))
    rules = [draw(rule_docs(i)) for i in range(count)]
    tz = draw(st.sampled_from(["UTC", "Asia/Seoul"]))
    return loads_ruleset(json.dumps({"timezone": tz, "rules": rules}, ensure_ascii=False))


INTERACTIONS = st.builds(
    lambda channel, direction, text, tags, campaign: interaction(
        channel=channel,
        direction=direction,
        content={"text": text},
        tags=tags,
        **({"metadata": {"campaign": "w"}} if campaign else {}),
        **({"recipients": [{"identifiers": [{"type": "phone", "value": "+821000000000"}]}]}
           if direction == "outbound" else {}),
    ),
    st.sampled_from(CHANNELS),
    st.sampled_from(["inbound", "outbound"]),
    st.sampled_from(["환불 부탁", "please REFUND", "요금제 해지", "hello", "cancel it"]),
    st.lists(st.sampled_from(TAGS), max_size=2, unique=True),
    st.booleans(),
)
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
PROFILES = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "tier": st.sampled_from(["vip", "gold", "bronze"]),
        "age": st.integers(5, 80) | st.just("30"),
        "birthday": st.sampled_from([date(1990, 11, 23), date(1990, 11, 22), "1985-11-23"]),
        "timezone": st.sampled_from(["Asia/Seoul", "America/New_York", "Mars/Base"]),
        "last_seen": st.sampled_from([NOW - timedelta(hours=2), NOW - timedelta(days=40)]),
        "segments": st.lists(st.sampled_from(SEGMENTS), max_size=2, unique=True),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rulesets(), st.lists(st.tuples(INTERACTIONS, PROFILES), min_size=1, max_size=4))
def test_indexed_evaluation_equals_the_naive_loop(rs: Ruleset, events: list) -> None:
    for item, profile in events:
        for trigger in (*TRIGGERS, SCHEDULE):
            target = None if trigger == SCHEDULE else item
            got = evaluate(rs, trigger, interaction=target, profile=profile, now=NOW)
            want_names, want_actions = naive(rs, trigger, interaction=target, profile=profile, now=NOW)
            assert got.matched == want_names, (trigger, item.channel, profile)
            assert got.actions == want_actions
