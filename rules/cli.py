"""`rules check DIR` and `rules test DIR SAMPLE.json`: argparse commands the hub's CLI mounts.

`add_commands(subparsers)` registers both; each sets `func(args) -> int` (0 ok, 1 rule errors,
2 a bad sample). `python -m rules.cli` runs them without the hub.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from .actions import action_to_dict
from .compiler import Ruleset, load_ruleset
from .errors import RulesError
from .evaluate import Evaluation, evaluate
from .sample import Sample, SampleError, parse_sample


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    check = subparsers.add_parser("check", help="validate a rules directory or file")
    check.add_argument("dir", help="a directory of *.yaml / *.yml rule files, or one file")
    _common(check)
    check.set_defaults(func=run_check)

    test = subparsers.add_parser("test", help="dry-run a sample event against the rules and explain")
    test.add_argument("dir", help="a directory of *.yaml / *.yml rule files, or one file")
    test.add_argument(
        "sample",
        help='JSON: {"trigger": ..., "interaction": {...}, "profile": {...}, "task": {...}, "now": ISO}',
    )
    test.add_argument("--region", default="KR", help="region for phone numbers without a country code")
    _common(test)
    test.set_defaults(func=run_test)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timezone", default="UTC", help="default timezone when the rules set none")
    parser.add_argument("--json", action="store_true", help="print JSON for machines")


def _load(args: argparse.Namespace, out: TextIO) -> Ruleset | None:
    try:
        return load_ruleset(args.dir, default_timezone=args.timezone)
    except RulesError as exc:
        if args.json:
            _dump({"ok": False, "errors": [i.to_dict() for i in exc.issues]}, out)
        else:
            for issue in exc.issues:
                print(issue, file=out)
            print(f"{len(exc.issues)} error(s); rules not loaded", file=out)
        return None


def run_check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    ruleset = _load(args, out)
    if ruleset is None:
        return 1
    triggers = Counter(rule.trigger for rule in ruleset.rules)
    if args.json:
        _dump(
            {
                "ok": True,
                "version": ruleset.version,
                "rules": len(ruleset.rules),
                "files": list(ruleset.files),
                "timezone": ruleset.timezone,
                "triggers": dict(triggers),
                "warnings": ruleset.warnings,
            },
            out,
        )
        return 0
    for warning in ruleset.warnings:
        print(f"warning: {warning}", file=out)
    print(
        f"ok: {len(ruleset.rules)} rules in {len(ruleset.files)} file(s), version {ruleset.version}, "
        f"timezone {ruleset.timezone}",
        file=out,
    )
    for trigger, count in sorted(triggers.items()):
        print(f"  {trigger}: {count}", file=out)
    return 0


def run_test(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    ruleset = _load(args, out)
    if ruleset is None:
        return 1
    try:
        data = json.loads(Path(args.sample).read_text(encoding="utf-8"))
        sample = parse_sample(data, default_now=datetime.now(UTC), region=args.region)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"{args.sample}: cannot read the sample: {exc}", file=sys.stderr)
        return 2
    except SampleError as exc:
        print(f"{args.sample}: {exc}", file=sys.stderr)
        return 2
    result = evaluate(ruleset, sample.trigger, **sample.inputs())
    if args.json:
        _dump({"ok": True, **result.to_dict()}, out)
    else:
        _explain(ruleset, result, sample, out)
    return 0


def _explain(ruleset: Ruleset, result: Evaluation, sample: Sample, out: TextIO) -> None:
    interaction = sample.interaction
    channel = f", channel {interaction.channel}" if interaction is not None else ""
    now = sample.now.isoformat()
    print(f"ruleset {ruleset.version}: trigger {result.trigger}{channel}, now {now}", file=out)
    if not result.trace:
        print("no rule listens for this event", file=out)
    for entry in result.trace:
        rule = entry.rule
        status = "MATCHED" if entry.matched else "no match"
        print(f"  {status:8}  {rule.name}  (priority {rule.priority}, {rule.file}:{rule.line})", file=out)
        for failure in entry.failures:
            print(f"              because {failure}", file=out)
    if result.stopped_by:
        print(f"stopped by {result.stopped_by}: later rules were not considered", file=out)
    print(f"actions ({len(result.actions)}):", file=out)
    for n, action in enumerate(result.actions, 1):
        data = action_to_dict(action)
        kind = data.pop("action")
        print(f"  {n}. {kind} {json.dumps(data, ensure_ascii=False, default=str)}", file=out)


def _dump(data: Any, out: TextIO) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str), file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rules", description="check and dry-run omnihub rule files")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
