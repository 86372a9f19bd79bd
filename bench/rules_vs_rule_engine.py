"""Rules engine against the `rule-engine` library on the same workload (issue 5; target >= 10x).

The workload: N rules (default 1,000) with mixed triggers, channels and operators (all / any / not
over eq, ne, in, not_in, contains, not_contains, matches, gt, gte, lt, lte, between, exists,
missing, has_tag, in_segment), and a stream of events (default 100,000) cycled from a pool of
distinct interactions and profiles, each with its trigger.

omnihub: `rules.evaluate` on the compiled, indexed Ruleset, one call per event.
rule-engine: one compiled `rule_engine.Rule` per condition, evaluated in turn with the same
all / any / not logic, rules in the same priority order, `stop` honoured. It is given the benefit
of the doubt: rules are pre-grouped by trigger (a dict lookup), and each event's flat context is
built before the clock starts. What it lacks is the channel index and the compiled closures.

rule-engine is slow enough (~20 us a condition) that 100,000 events over it take many minutes, so
by default it runs on the first --baseline-events of the same stream; pass --baseline-events 100000
for the issue's full numbers. Both sides are checked to fire the same rules before timing.

Run: pip install -e .[bench]; python -m bench.rules_vs_rule_engine (or python bench/rules_vs_rule_engine.py) [--rules 1000] [--events 100000]
     [--baseline-events 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

try:
    import rule_engine
except ModuleNotFoundError:  # the bench extra: --help works without it; a run says what to install
    rule_engine = None

if __package__ in (None, ""):  # `python bench/x.py`: the project root, not bench/, heads sys.path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from rules import Ruleset, evaluate, loads_ruleset
from schemas import Interaction

NOW = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)
CHANNELS = ["sms", "chat", "email", "voice", "pos", "fax"]
TRIGGERS = ["interaction.received"] * 5 + ["interaction.sent"] * 2 + [
    "profile.created", "profile.updated", "message.delivered"]
TIERS = ["vip", "gold", "silver", "bronze"]
CITIES = ["seoul", "busan", "incheon", "daegu"]
WORDS = ["refund", "cancel", "환불", "해지", "delivery", "hello", "price", "배송"]
EVENT_TAGS = ["vip", "complaint", "repeat"]  # rules' add_tag never uses these: has_tag reads the event's
SEGMENTS = ["gold", "watch", "dormant"]

# our field path -> the key in rule-engine's flat context
FLAT = {
    "interaction.channel": "channel",
    "interaction.direction": "direction",
    "interaction.content.text": "text",
    "interaction.metadata.campaign": "campaign",
    "profile.tier": "tier",
    "profile.city": "city",
    "profile.age": "age",
    "profile.spend": "spend",
}

Cond = tuple[Any, ...]  # ("p", op, field, value) | ("all", [...]) | ("any", [...]) | ("not", cond)


@dataclass
class Spec:
    name: str
    trigger: str
    priority: int
    when: Cond | None
    then: list[Any]
    stop: bool


def _predicate(rnd: random.Random) -> Cond:
    kind = rnd.randrange(14)
    match kind:
        case 0:
            return ("p", "eq", "profile.tier", rnd.choice(TIERS))
        case 1:
            return ("p", "ne", "profile.city", rnd.choice(CITIES))
        case 2:
            return ("p", "in", "profile.tier", rnd.sample(TIERS, 2))
        case 3:
            return ("p", "not_in", "profile.city", rnd.sample(CITIES, 2))
        case 4:
            return ("p", "contains", "interaction.content.text", rnd.choice(WORDS))
        case 5:
            return ("p", "not_contains", "interaction.content.text", rnd.choice(WORDS))
        case 6:
            return ("p", "matches", "interaction.content.text", "(?i)" + "|".join(rnd.sample(WORDS, 2)))
        case 7:
            return ("p", rnd.choice(["gt", "gte", "lt", "lte"]), "profile.age", rnd.randrange(18, 70))
        case 8:
            return ("p", rnd.choice(["gt", "lt"]), "profile.spend", float(rnd.randrange(0, 2_000_000, 50_000)))
        case 9:
            low = rnd.randrange(18, 60)
            return ("p", "between", "profile.age", [low, low + rnd.randrange(5, 30)])
        case 10:
            return ("p", rnd.choice(["exists", "missing"]), "interaction.metadata.campaign", None)
        case 11:
            return ("p", "has_tag", None, rnd.choice(EVENT_TAGS))
        case 12:
            return ("p", "in_segment", None, rnd.choice(SEGMENTS))
        case _:
            return ("p", "eq", "interaction.direction", rnd.choice(["inbound", "outbound"]))


def _condition(rnd: random.Random, depth: int = 0) -> Cond:
    roll = rnd.random()
    if depth < 2 and roll < 0.15:
        return ("any", [_condition(rnd, depth + 1) for _ in range(rnd.randrange(2, 4))])
    if depth < 2 and roll < 0.22:
        return ("not", _condition(rnd, depth + 1))
    return _predicate(rnd)


def build_specs(count: int, seed: int) -> list[Spec]:
    rnd = random.Random(seed)
    specs = []
    for n in range(count):
        items: list[Cond] = []
        pin = rnd.random()
        if pin < 0.45:
            items.append(("p", "eq", "interaction.channel", rnd.choice(CHANNELS)))
        elif pin < 0.75:
            items.append(("p", "in", "interaction.channel", rnd.sample(CHANNELS, rnd.randrange(2, 4))))
        items += [_condition(rnd) for _ in range(rnd.randrange(1, 4))]
        then = rnd.choice([
            [{"add_tag": f"t-{n}"}],
            [{"route": {"queue": f"q{n % 20}", "priority": n % 10}}],
            [{"set_priority": n % 10}, {"add_tag": f"t-{n}"}],
            [{"publish": "bench.rule.fired"}],
            [{"send_message": {"template": f"m{n}", "purpose": "transactional"}}],
        ])
        specs.append(Spec(f"rule-{n}", rnd.choice(TRIGGERS), rnd.randrange(10), ("all", items), then,
                          rnd.random() < 0.01))
    return specs


# --- omnihub ------------------------------------------------------------------------------------


def _yaml_condition(cond: Cond) -> dict[str, Any]:
    match cond:
        case ("p", op, field, value):
            out: dict[str, Any] = {"op": op} if field is None else {"field": field, "op": op}
            if value is not None:
                out["value"] = value
            return out
        case ("all" | "any" as group, items):
            return {group: [_yaml_condition(c) for c in items]}
        case ("not", item):
            return {"not": _yaml_condition(item)}
    raise ValueError(cond)


def build_ruleset(specs: list[Spec]) -> Ruleset:
    rules = [{"name": s.name, "on": s.trigger, "priority": s.priority, "when": _yaml_condition(s.when),
              "then": s.then, "stop": s.stop} for s in specs]
    return loads_ruleset(json.dumps({"timezone": "Asia/Seoul", "rules": rules}, ensure_ascii=False))


# --- rule-engine --------------------------------------------------------------------------------

_CONTEXT = rule_engine.Context(default_value=None) if rule_engine is not None else None
_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _literal(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def rule_engine_text(op: str, field: str | None, value: Any) -> str:
    key = FLAT.get(field or "", "")
    match op:
        case "eq":
            return f"{key} == {_literal(value)}"
        case "ne":
            return f"{key} != {_literal(value)}"
        case "in":
            return f"{key} in {_literal(value)}"
        case "not_in":
            return f"{key} not in {_literal(value)}"
        case "contains":
            return f"{_literal(value)} in {key}"
        case "not_contains":
            return f"not ({_literal(value)} in {key})"
        case "matches":
            return f"{key} =~~ {_literal(value)}"
        case "gt" | "gte" | "lt" | "lte":
            return f"{key} {_COMPARE[op]} {_literal(value)}"
        case "between":
            return f"{key} >= {value[0]} and {key} <= {value[1]}"
        case "exists":
            return f"{key} != null"
        case "missing":
            return f"{key} == null"
        case "has_tag":
            return f"{_literal(value)} in tags"
        case "in_segment":
            return f"{_literal(value)} in segments"
    raise ValueError(op)


def _compile_baseline(cond: Cond) -> Any:
    match cond:
        case ("p", op, field, value):
            return rule_engine.Rule(rule_engine_text(op, field, value), context=_CONTEXT).matches
        case ("all", items):
            checks = [_compile_baseline(c) for c in items]
            return lambda ctx: all(c(ctx) for c in checks)
        case ("any", items):
            checks = [_compile_baseline(c) for c in items]
            return lambda ctx: any(c(ctx) for c in checks)
        case ("not", item):
            check = _compile_baseline(item)
            return lambda ctx: not check(ctx)
    raise ValueError(cond)


class Baseline:
    """Every rule of the event's trigger, in priority order, each condition a rule_engine.Rule."""

    def __init__(self, specs: list[Spec]) -> None:
        order = sorted(range(len(specs)), key=lambda i: (-specs[i].priority, i))
        self.by_trigger: dict[str, list[tuple[str, Any, list[Any], bool]]] = {}
        for i in order:
            s = specs[i]
            self.by_trigger.setdefault(s.trigger, []).append((s.name, _compile_baseline(s.when), s.then, s.stop))

    def run(self, trigger: str, ctx: dict[str, Any]) -> tuple[list[str], list[Any]]:
        matched: list[str] = []
        actions: list[Any] = []
        for name, check, then, stop in self.by_trigger.get(trigger, ()):
            if check(ctx):
                matched.append(name)
                actions.extend(then)
                if stop:
                    break
        return matched, actions


# --- events -------------------------------------------------------------------------------------


def build_events(pool: int, seed: int) -> list[tuple[str, Interaction, dict[str, Any], dict[str, Any]]]:
    """(trigger, interaction, profile, rule-engine's flat context) for `pool` distinct events."""
    rnd = random.Random(seed + 1)
    out = []
    for n in range(pool):
        trigger = rnd.choice(TRIGGERS)
        outbound = trigger == "interaction.sent" or (trigger.startswith("message.") and rnd.random() < 0.8)
        channel = rnd.choice(CHANNELS)
        text = " ".join(rnd.sample(WORDS, 2))
        tags = rnd.sample(EVENT_TAGS, rnd.randrange(0, 2))
        campaign = rnd.choice(["winter", None])
        party = {"identifiers": [{"type": "phone", "value": f"+8210{n:08d}"}]}
        doc: dict[str, Any] = {
            "channel": channel, "direction": "outbound" if outbound else "inbound", "kind": "message",
            "provider": "bench", "provider_ref": f"B-{n}", "occurred_at": "2026-11-23T10:00:00+09:00",
            "content": {"text": text}, "tags": tags,
            ("recipients" if outbound else "sender"): [party] if outbound else party,
        }
        if campaign:
            doc["metadata"] = {"campaign": campaign}
        item = Interaction.model_validate(doc)
        profile = {"tier": rnd.choice(TIERS), "city": rnd.choice(CITIES), "age": rnd.randrange(18, 80),
                   "spend": float(rnd.randrange(0, 2_500_000)), "segments": rnd.sample(SEGMENTS, rnd.randrange(0, 3)),
                   "timezone": "Asia/Seoul"}
        flat = {"channel": channel, "direction": doc["direction"], "text": text, "campaign": campaign,
                "tier": profile["tier"], "city": profile["city"], "age": profile["age"], "spend": profile["spend"],
                "tags": tuple(tags), "segments": tuple(profile["segments"])}
        out.append((trigger, item, profile, flat))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--baseline-events", type=int, default=3000,
                        help="events run through rule-engine (the first of the same stream); 100000 for the full run")
    parser.add_argument("--pool", type=int, default=2000, help="distinct events the stream cycles through")
    parser.add_argument("--check", type=int, default=500, help="events on which both sides must fire the same rules")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    if rule_engine is None:
        sys.exit("this bench compares against rule-engine: pip install -e '.[bench]'")

    specs = build_specs(args.rules, args.seed)
    started = time.perf_counter()
    ruleset = build_ruleset(specs)
    load_s = time.perf_counter() - started
    baseline = Baseline(specs)
    pool = build_events(args.pool, args.seed)
    stream = [pool[i % len(pool)] for i in range(max(args.events, args.baseline_events))]

    fired = 0
    for trigger, item, profile, flat in stream[: args.check]:
        ours = evaluate(ruleset, trigger, interaction=item, profile=profile, now=NOW)
        names, actions = baseline.run(trigger, flat)
        assert ours.matched == names, (trigger, item.channel, ours.matched, names)
        assert len(ours.actions) == len(actions)
        fired += len(names)

    events = stream[: args.events]
    started = time.perf_counter()
    for trigger, item, profile, _flat in events:
        evaluate(ruleset, trigger, interaction=item, profile=profile, now=NOW)
    ours_s = time.perf_counter() - started

    base_events = stream[: args.baseline_events]
    run = baseline.run
    started = time.perf_counter()
    for trigger, _item, _profile, flat in base_events:
        run(trigger, flat)
    base_s = time.perf_counter() - started

    ours_rate, base_rate = len(events) / ours_s, len(base_events) / base_s
    ratio = ours_rate / base_rate
    print(f"rules bench: {len(specs)} rules ({len(ruleset.triggers)} triggers, compiled in {load_s:.2f} s); "
          f"checked {args.check} events fire the same rules on both sides ({fired / args.check:.1f} rules/event)")
    print(f"  omnihub      {len(events):>7,} events in {ours_s:6.2f} s: {ours_rate:>10,.0f} events/s "
          f"({ours_s / len(events) * 1e6:.1f} us/event)")
    print(f"  rule-engine  {len(base_events):>7,} events in {base_s:6.2f} s: {base_rate:>10,.0f} events/s "
          f"({base_s / len(base_events) * 1e6:.1f} us/event)")
    print(f"  ratio: {ratio:.1f}x (target >= 10x) {'OK' if ratio >= 10 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
