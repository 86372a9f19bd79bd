"""`omnihub rules replay DIR --since 7d`: what a candidate ruleset would have done differently.

Nothing is acted on. For each stored interaction since the given time, the ruleset version that
decided it (recorded on the interaction; its sources are kept in `rulesets`) is evaluated again,
and so is the candidate, with the same inputs: rules are a pure function of (event, interaction,
profile, clock), so this re-derives the live decision. The clock is the interaction's
received_at. Caveats: the profile is as it is now, not as it was, and the stored document
already carries the tags the live rules added.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.automation.runtime import compile_sources, load_dir
from hub.profiles.segments import profile_view
from hub.progress import Progress
from hub.settings import load_settings
from hub.storage import batch as ingest_store
from hub.storage.engine import create_engine
from hub.storage.models import interactions
from hub.storage.rules_models import rulesets
from rules import Evaluation, RulesError, Ruleset, SpecError, action_to_dict, evaluate, parse_duration
from schemas import BUILTIN_CHANNELS, Direction, EventType, Interaction

NO_RULES = "(none)"  # interactions ingested while no rules were configured: nothing was decided


@dataclass
class ReplayReport:
    candidate_version: str
    since: str
    scanned: int = 0
    compared: int = 0
    differing: int = 0
    live_versions: dict[str, int] = field(default_factory=dict)
    unknown_versions: dict[str, int] = field(default_factory=dict)  # sources not kept: not compared
    rules: dict[str, dict[str, int]] = field(default_factory=dict)  # rule -> {live, candidate, delta}
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _decision(result: Evaluation | None) -> dict[str, Any]:
    if result is None:
        return {"matched": [], "actions": []}
    return {"matched": result.matched, "actions": [action_to_dict(a) for a in result.actions]}


async def _live_rulesets(engine: AsyncEngine, channels: Collection[str]) -> dict[str, Ruleset | None]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(rulesets.c.version, rulesets.c.sources))).all()
    known: dict[str, Ruleset | None] = {}
    for version, sources in rows:
        try:
            known[version] = compile_sources([tuple(s) for s in json.loads(sources)], channels)  # type: ignore[misc]
        except RulesError:
            known[version] = None  # the rules package changed since: this version no longer loads
    return known


async def replay(engine: AsyncEngine, candidate: Ruleset, since: datetime, *, max_examples: int = 5,
                 batch: int = 500, channels: Collection[str] = BUILTIN_CHANNELS,
                 progress: Callable[[int, int | None], None] | None = None) -> ReplayReport:
    """`progress(scanned, total)` after each batch, when given (the total costs a count first)."""
    report = ReplayReport(candidate.version, since.isoformat())
    total = await _count_since(engine, since) if progress is not None else None
    live_sets = await _live_rulesets(engine, channels)
    live_counts: Counter[str] = Counter()
    cand_counts: Counter[str] = Counter()
    cursor: tuple[datetime, uuid.UUID] | None = None
    c = interactions.c
    while True:
        query = select(c.id, c.received_at, c.ruleset_version, c.profile_id, c.document).where(c.received_at >= since)
        if cursor is not None:
            query = query.where((c.received_at > cursor[0]) | ((c.received_at == cursor[0]) & (c.id > cursor[1])))
        async with engine.connect() as conn:
            rows = (await conn.execute(query.order_by(c.received_at, c.id).limit(batch))).all()
            pids = list({r.profile_id for r in rows if r.profile_id is not None})
            found = await conn.run_sync(ingest_store.load_profiles, pids) if pids else {}
        for row in rows:
            report.scanned += 1
            version = row.ruleset_version or NO_RULES
            if version != NO_RULES and live_sets.get(version) is None:
                report.unknown_versions[version] = report.unknown_versions.get(version, 0) + 1
                continue
            report.live_versions[version] = report.live_versions.get(version, 0) + 1
            item = Interaction.model_validate_json(row.document)
            trigger = (EventType.INTERACTION_RECEIVED if item.direction is Direction.INBOUND
                       else EventType.INTERACTION_SENT)
            inputs = {"interaction": item, "profile": profile_view(found.get(row.profile_id)), "now": row.received_at}
            live_rs = live_sets.get(version)
            live = evaluate(live_rs, trigger, **inputs) if live_rs is not None else None
            cand = evaluate(candidate, trigger, **inputs)
            report.compared += 1
            live_counts.update(live.matched if live is not None else ())
            cand_counts.update(cand.matched)
            before, after = _decision(live), _decision(cand)
            if before["actions"] != after["actions"]:
                report.differing += 1
                if len(report.examples) < max_examples:
                    report.examples.append({
                        "interaction_id": str(row.id), "channel": item.channel,
                        "received_at": row.received_at.isoformat(), "live_version": version,
                        "live": before, "candidate": after,
                    })
        if progress is not None:
            progress(report.scanned, total)
        if len(rows) < batch:
            break
        cursor = (rows[-1].received_at, rows[-1].id)
    for name in sorted(set(live_counts) | set(cand_counts) | _interaction_rules(candidate)):
        live_n, cand_n = live_counts[name], cand_counts[name]
        report.rules[name] = {"live": live_n, "candidate": cand_n, "delta": cand_n - live_n}
    return report


async def _count_since(engine: AsyncEngine, since: datetime) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(interactions).where(interactions.c.received_at >= since)
        return (await conn.execute(query)).scalar_one()


def _interaction_rules(ruleset: Ruleset) -> set[str]:
    triggers = (EventType.INTERACTION_RECEIVED, EventType.INTERACTION_SENT)
    return {r.name for r in ruleset.rules if r.trigger in triggers}


def parse_since(text: str, now: datetime) -> datetime:
    """`7d`, `12h`, `30m` ago, or an ISO datetime with an offset."""
    try:
        return now - parse_duration(text)
    except SpecError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise SpecError(f"--since takes a duration like 7d or an ISO datetime, not {text!r}") from None
    if when.tzinfo is None:
        raise SpecError("--since needs a UTC offset, e.g. 2026-11-20T00:00:00+09:00")
    return when


def print_report(report: ReplayReport, out: TextIO) -> None:
    versions = ", ".join(f"{v} x{n}" for v, n in report.live_versions.items()) or "none"
    print(f"candidate {report.candidate_version} over {report.scanned} interaction(s) since {report.since}",
          file=out)
    print(f"  compared {report.compared} (live versions: {versions})", file=out)
    for version, n in report.unknown_versions.items():
        print(f"  skipped {n} decided by {version}: its sources were not kept", file=out)
    width = max([len(name) for name in report.rules] + [4])
    print(f"  {'rule':<{width}}  {'live':>6}  {'candidate':>9}  {'delta':>6}", file=out)
    for name, counts in report.rules.items():
        print(f"  {name:<{width}}  {counts['live']:>6}  {counts['candidate']:>9}  {counts['delta']:>+6}", file=out)
    print(f"{report.differing} interaction(s) would be decided differently", file=out)
    for ex in report.examples:
        print(f"  {ex['interaction_id']} ({ex['channel']}, {ex['received_at']})", file=out)
        for side in ("live", "candidate"):
            acts = "; ".join(_short(a) for a in ex[side]["actions"]) or "nothing"
            print(f"    {side:>9}: {acts}", file=out)


def _short(action: dict[str, Any]) -> str:
    rest = {k: v for k, v in action.items() if k != "action" and v not in (None, [], False)}
    return f"{action['action']} {json.dumps(rest, ensure_ascii=False, default=str)}"


def add_command(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = subparsers.add_parser("replay", help="report what a candidate ruleset would have done differently")
    cmd.add_argument("dir", help="the candidate rules: a directory of *.yaml / *.yml files, or one file")
    cmd.add_argument("--since", required=True, help="how far back: a duration like 7d, or an ISO datetime")
    cmd.add_argument("--examples", type=int, default=5, help="how many differing interactions to show")
    cmd.add_argument("--json", action="store_true", help="print JSON for machines")
    cmd.add_argument("--config", default=argparse.SUPPRESS, help="YAML config file (for database_url)")
    cmd.set_defaults(func=run_replay)


def run_replay(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        candidate, _ = load_dir(args.dir)
    except RulesError as exc:
        for issue in exc.issues:
            print(issue, file=out)
        print(f"{len(exc.issues)} error(s); candidate not loaded", file=out)
        return 1
    try:
        since = parse_since(args.since, datetime.now(UTC))
    except SpecError as exc:
        print(f"omnihub: {exc}", file=sys.stderr)
        return 2
    settings = load_settings(args.config)

    async def run() -> ReplayReport:
        engine = create_engine(settings.database_url)
        try:
            with Progress("replaying interactions", "interaction", quiet=args.json) as progress:
                return await replay(engine, candidate, since, max_examples=args.examples,
                                    progress=progress if progress.shown else None)
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2, default=str), file=out)
    else:
        print_report(report, out)
    return 0
