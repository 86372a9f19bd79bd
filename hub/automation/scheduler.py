"""Time in the rules: stored timers that fire once, and `schedule` rules that scan profiles daily.

Both are idempotent across restarts. A timer is claimed by a conditional update (pending -> fired)
in the same transaction as its effects, so it fires once even with two hubs or a crash mid-way.
A scheduled rule writes a `schedule_runs` row per (rule, profile, local day), unique in the
database, in the same transaction as what it sends; a second scan the same day, or one resumed
after a restart, skips whoever already has a row. The clock is injected so tests drive it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from hub.automation.effects import Attributed, attributed, plan, write_effects
from hub.ids import new_id
from hub.profiles.segments import SegmentSet, profile_view
from hub.storage.batch import insert_rows
from hub.storage.engine import writer
from hub.storage.models import interactions, outbox, profiles
from hub.storage.rules_models import schedule_runs, timers
from hub.tasks import Supervised
from rules import AddTag, Escalate, Route, Ruleset, Schedule, SetPriority, evaluate, fire_timer, next_fire
from schemas import Interaction

log = logging.getLogger("omnihub.scheduler")

Clock = Callable[[], datetime]
# A fired timer has no ingest step after it: routing asks are stored for the routing module.
_DEFERRED = (Route, Escalate)


@dataclass
class TickReport:
    timers_fired: int = 0
    timers_ended: int = 0  # `unless` held or the rule is gone
    schedule_runs: int = 0  # (rule, profile) pairs acted on
    scans: list[str] = field(default_factory=list)  # "trigger@instant" of each scan run


class Scheduler:
    def __init__(
        self,
        engine: AsyncEngine,
        rules: Callable[[], Ruleset | None],
        *,
        clock: Clock = lambda: datetime.now(UTC),
        poll_interval_s: float = 1.0,
        batch: int = 500,
        catch_up: timedelta = timedelta(hours=6),
        on_commit: Callable[[], None] | None = None,
        segment_set: SegmentSet | None = None,
    ) -> None:
        self._engine = writer(engine)
        self._segments = segment_set  # profile changes by scheduled rules re-evaluate segments
        self._reader = engine
        self._rules = rules
        self._clock = clock
        self._poll = poll_interval_s
        self._batch = batch
        self._catch_up = catch_up  # a scan missed while the hub was down runs if this recent
        self._on_commit = on_commit
        self._next: dict[str, datetime] = {}
        self.last_scan: dict[str, datetime] = {}  # trigger -> the fire instant of its latest scan
        self._lock = asyncio.Lock()
        self.supervised = Supervised("rules-scheduler", self._run)

    async def start(self) -> None:
        await self.supervised.start()

    async def stop(self) -> None:
        await self.supervised.stop()

    async def _run(self) -> None:
        """The supervised body: a tick every poll interval; a failed tick is retried with backoff."""
        while True:
            await self.tick()
            self.supervised.progressed()
            with self.supervised.waiting():
                await asyncio.sleep(self._poll)

    async def tick(self, now: datetime | None = None) -> TickReport:
        """Fire due timers, then run due schedules, as of `now` (default: the clock)."""
        async with self._lock:
            now = now or self._clock()
            report = TickReport()
            ruleset = self._rules()
            await self._fire_timers(ruleset, now, report)
            if ruleset is not None:
                await self._run_schedules(ruleset, now, report)
            if (report.timers_fired or report.schedule_runs) and self._on_commit is not None:
                self._on_commit()
            return report

    # --- timers ---------------------------------------------------------------------------------

    async def _fire_timers(self, ruleset: Ruleset | None, now: datetime, report: TickReport) -> None:
        while True:
            async with self._reader.connect() as conn:
                due = (await conn.execute(
                    select(timers.c.id).where(timers.c.state == "pending", timers.c.due_at <= now)
                    .order_by(timers.c.due_at).limit(self._batch)
                )).scalars().all()
            for timer_id in due:
                try:
                    async with self._engine.begin() as conn:
                        fired = await conn.run_sync(_fire_one, timer_id, ruleset, now, self._segments)
                except SQLAlchemyError:
                    raise  # the database is unwell: the timer stays pending for the next tick
                except Exception as exc:  # bad data in one timer must not block the rest
                    log.exception("timer failed; ending it", extra={"timer_id": str(timer_id)})
                    async with self._engine.begin() as conn:
                        await conn.execute(update(timers).where(timers.c.id == timer_id, timers.c.state == "pending")
                                           .values(state="cancelled", ended_at=now, reason=f"error: {exc}"[:200]))
                    report.timers_ended += 1
                    continue
                if fired is True:
                    report.timers_fired += 1
                elif fired is False:
                    report.timers_ended += 1
            self.supervised.working()
            if len(due) < self._batch:
                return

    # --- schedules ------------------------------------------------------------------------------

    async def _run_schedules(self, ruleset: Ruleset, now: datetime, report: TickReport) -> None:
        for trigger, schedule in ruleset.schedules.items():
            at = self._next.get(trigger) or next_fire(schedule, now - self._catch_up, ruleset.tz)
            while at <= now:
                report.schedule_runs += await self.run_schedule(ruleset, schedule, at)
                report.scans.append(f"{trigger}@{at.isoformat()}")
                self.last_scan[trigger] = at
                at = next_fire(schedule, at, ruleset.tz)
            self._next[trigger] = at

    async def run_schedule(self, ruleset: Ruleset, schedule: Schedule, fire_at: datetime) -> int:
        """Scan every live profile for the rules on `schedule` as of `fire_at`; returns pairs acted on."""
        day = fire_at.astimezone(ruleset.tz).date().isoformat()
        acted = 0
        after: uuid.UUID | None = None
        while True:
            async with self._reader.connect() as conn:
                query = select(profiles).where(profiles.c.merged_into.is_(None)).order_by(profiles.c.id)
                if after is not None:
                    query = query.where(profiles.c.id > after)
                rows = [dict(r) for r in (await conn.execute(query.limit(self._batch))).mappings()]
            if not rows:
                return acted
            after = rows[-1]["id"]
            matches: list[tuple[uuid.UUID, str, list[Attributed]]] = []
            for row in rows:
                row["attributes"] = json.loads(row["attributes"] or "{}")
                result = evaluate(ruleset, schedule.trigger, profile=profile_view(row), now=fire_at)
                by_rule: dict[str, list[Attributed]] = {}
                for rule, action in attributed(result):
                    by_rule.setdefault(rule, []).append((rule, action))
                for name in result.matched:  # a matched rule with no stored effect still runs once
                    matches.append((row["id"], name, by_rule.get(name, [])))
            # Another hub may record some of these between our read and write: the insert then fails
            # and one more try re-reads what is recorded and skips it.
            retrying = AsyncRetrying(retry=retry_if_exception_type(IntegrityError),
                                     stop=stop_after_attempt(2), reraise=True)
            async for attempt in retrying:
                with attempt:
                    async with self._engine.begin() as conn:
                        acted += await conn.run_sync(_record_runs, matches, day, ruleset.version, fire_at,
                                                     self._segments)
            self.supervised.working()  # a scan of many profiles is long: each batch shows it is not stuck
            if len(rows) < self._batch:
                return acted


def _record_runs(conn: Connection, matches: Sequence[tuple[uuid.UUID, str, list[Attributed]]], day: str,
                 version: str, now: datetime, segment_set: SegmentSet | None = None) -> int:
    if not matches:
        return 0
    names = sorted({name for _, name, _ in matches})
    done = {tuple(row) for row in conn.execute(
        select(schedule_runs.c.profile_id, schedule_runs.c.rule).where(
            schedule_runs.c.day == day, schedule_runs.c.rule.in_(names),
            schedule_runs.c.profile_id.in_(list({pid for pid, _, _ in matches})),
        )
    )}
    fresh = [(pid, name, pairs) for pid, name, pairs in matches if (pid, name) not in done]
    insert_rows(conn, schedule_runs, [
        {"id": new_id(), "rule": name, "profile_id": pid, "day": day, "ran_at": now} for pid, name, _ in fresh
    ])
    events: list[dict[str, Any]] = []
    for pid, _name, pairs in fresh:
        planned = plan(pairs, interaction=None, profile_id=pid, now=now, ruleset_version=version,
                       defer=_DEFERRED)
        events.extend(planned.events)
        write_effects(conn, planned, key=None, profile_id=pid, now=now, segment_set=segment_set)
    insert_rows(conn, outbox, events)
    return len(fresh)


def _fire_one(conn: Connection, timer_id: uuid.UUID, ruleset: Ruleset | None, now: datetime,
              segment_set: SegmentSet | None = None) -> bool | None:
    """Claim and fire one timer. True: fired; False: ended without acting; None: someone else had it."""
    row = conn.execute(select(timers).where(timers.c.id == timer_id, timers.c.state == "pending")).first()
    if row is None:
        return None
    definition = ruleset.timer(row.rule, row.name) if ruleset is not None else None
    interaction, document = _load_interaction(conn, row.interaction_id)
    profile = _load_profile(conn, row.profile_id)
    if definition is None:
        outcome = None
        state, reason = "cancelled", "rule removed"
    else:
        outcome = fire_timer(ruleset, definition, interaction=interaction, profile=profile, now=now)  # type: ignore[arg-type]
        state, reason = ("fired", "fired") if outcome.fired else ("cancelled", "unless held")
    claimed = conn.execute(
        update(timers).where(timers.c.id == timer_id, timers.c.state == "pending")
        .values(state=state, ended_at=now, reason=reason)
    ).rowcount
    if claimed != 1:
        return None
    if outcome is None or not outcome.fired:
        return False
    assert ruleset is not None
    pairs = [(row.rule, a) for a in outcome.actions]
    planned = plan(pairs, interaction=interaction, profile_id=row.profile_id, now=now,
                   ruleset_version=ruleset.version, defer=_DEFERRED)
    write_effects(conn, planned, key=row.key, profile_id=row.profile_id, now=now, segment_set=segment_set)
    insert_rows(conn, outbox, planned.events)
    if interaction is not None and document is not None:
        _apply_to_interaction(conn, interaction, pairs)
    return True


def _load_interaction(conn: Connection, iid: uuid.UUID | None) -> tuple[Interaction | None, str | None]:
    if iid is None:
        return None, None
    document = conn.execute(select(interactions.c.document).where(interactions.c.id == iid)).scalar()
    if document is None:
        return None, None
    return Interaction.model_validate_json(document), document


def _load_profile(conn: Connection, pid: uuid.UUID | None) -> dict[str, Any] | None:
    if pid is None:
        return None
    row = conn.execute(select(profiles).where(profiles.c.id == pid)).mappings().first()
    if row is None:
        return None
    data = dict(row)
    data["attributes"] = json.loads(data["attributes"] or "{}")
    return profile_view(data)


def _apply_to_interaction(conn: Connection, item: Interaction, pairs: Sequence[Attributed]) -> None:
    """A fired timer's add_tag / set_priority change the stored interaction it watched."""
    changed = False
    for _rule, action in pairs:
        if isinstance(action, AddTag) and action.tag not in item.tags:
            item.tags.append(action.tag)
            changed = True
        elif isinstance(action, SetPriority) and item.priority != action.priority:
            item.priority, changed = action.priority, True
    if changed:
        conn.execute(update(interactions).where(interactions.c.id == item.id).values(
            document=item.model_dump_json(exclude_none=True, by_alias=True), priority=item.priority))

