"""Rules evaluation throughput: a 50-rule ruleset where 5 rules are indexed for the event's channel.

Prints events/s and microseconds per event. Target (issue 5): under 20 us per event.
Run: python bench/rules_eval.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime

if __package__ in (None, ""):  # `python bench/x.py`: the project root, not bench/, heads sys.path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from rules import evaluate, loads_ruleset  # noqa: E402
from schemas import Interaction  # noqa: E402

_OTHER_CHANNELS = ["email", "voice", "chat", "fax", "pos"]


def build_rules() -> str:
    lines = ["timezone: Asia/Seoul", "rules:"]
    # 5 rules the sms event meets: the shapes rule authors write most.
    lines += [
        (
            "  - {name: sms-vip, on: interaction.received, priority: 10, when: {all: ["
            "{field: interaction.channel, op: eq, value: sms}, {field: profile.tier, op: eq, value: vip}]},"
            " then: [{route: {queue: vip, priority: 10}}]}"
        ),
        (
            "  - {name: sms-complaint, on: interaction.received, when: {all: ["
            "{field: interaction.channel, op: in, value: [sms, chat]},"
            " {field: interaction.content.text, op: matches, value: '(?i)cancel|refund|해지|환불'}]},"
            " then: [{add_tag: complaint}, {route: {queue: retention, priority: 5}}]}"
        ),
        (
            "  - {name: sms-segment, on: interaction.received, when: {all: ["
            "{field: interaction.channel, op: eq, value: sms}, {op: in_segment, value: gold},"
            " {field: interaction.metadata.campaign, op: exists}]}, then: [{add_tag: campaign}]}"
        ),
        (
            "  - {name: sms-any, on: interaction.received, when: {all: ["
            "{field: interaction.channel, op: eq, value: sms}, {any: ["
            "{field: profile.tier, op: in, value: [gold, silver]}, {op: has_tag, value: complaint}]}]},"
            " then: [{set_priority: 3}]}"
        ),
        (
            "  - {name: sms-ack, on: interaction.received, when: {all: ["
            "{field: interaction.channel, op: eq, value: sms},"
            " {field: interaction.occurred_at, op: within, value: 1h}]}, then: [{auto_reply: ack}]}"
        ),
    ]
    for n in range(45):
        channel = _OTHER_CHANNELS[n % len(_OTHER_CHANNELS)]
        lines.append(
            f"  - {{name: other-{n}, on: interaction.received, priority: {n % 7}, when: {{all: ["
            f"{{field: interaction.channel, op: eq, value: {channel}}},"
            f" {{field: profile.tier, op: eq, value: t{n}}}]}}, then: [{{add_tag: t{n}}}]}}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    ruleset = loads_ruleset(build_rules())
    interaction = Interaction.model_validate(
        {
            "channel": "sms",
            "direction": "inbound",
            "provider": "acme-gateway",
            "provider_ref": "MSG-1",
            "occurred_at": "2026-11-23T10:00:00+09:00",
            "content": {"text": "배송지 변경 부탁드립니다. 환불은 필요 없어요"},
            "metadata": {"campaign": "winter"},
        }
    )
    profile = {"tier": "gold", "segments": ["gold"], "timezone": "Asia/Seoul"}
    now = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)
    result = evaluate(ruleset, "interaction.received", interaction=interaction, profile=profile, now=now)
    assert len(result.trace) == 5, [t.name for t in result.trace]
    count, deadline = 0, time.perf_counter() + args.seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(1000):
            evaluate(ruleset, "interaction.received", interaction=interaction, profile=profile, now=now)
        count += 1000
    elapsed = time.perf_counter() - start
    print(
        f"rules_eval: {len(ruleset.rules)} rules, {len(result.trace)} met per event, {len(result.actions)} "
        f"actions: {count / elapsed:,.0f} events/s, {elapsed / count * 1e6:.1f} us/event"
    )


if __name__ == "__main__":
    main()
