"""The ingest pipeline: dedupe -> identity -> steps (rules, routing) -> one transaction.

Every interaction is committed together with its profile changes and outbox events, so a crash
leaves all or nothing and a 2xx means all of it is durable. Concurrent ingests share commits: one
writer task takes whatever is queued and commits it as a group, so the fsync a durable answer
needs is paid once per group, not once per request.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas import EventType, Interaction, OmnihubError

from .events import event_row
from .identity import IdentityPlan
from .ids import new_id
from .storage import repositories as repo
from .storage.engine import writer
from .storage.models import identifiers, interactions, outbox, profiles

log = logging.getLogger("omnihub.pipeline")

# Another process may insert the same identifier or provider ref between our read and our write;
# the unique constraints refuse it and a fresh attempt sees the other's row.
_CONFLICT_RETRIES = 5


class PipelineStopped(OmnihubError):
    pass


@dataclass(frozen=True)
class IngestResult:
    interaction_id: uuid.UUID
    profile_id: uuid.UUID | None
    created: bool  # False when this was a repeat of an interaction already stored


Write = Callable[[AsyncConnection], Awaitable[None]]


@dataclass
class IngestContext:
    """What a step sees and may add to, for one new interaction, inside the writer.

    Steps are synchronous and do no I/O (rules are a pure function); what they want written goes
    into `events` and `writes`, which the writer applies in the interaction's transaction.
    """

    interaction: Interaction
    profile: dict[str, Any] | None
    profile_created: bool
    now: datetime
    actions: list[Any] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)


IngestStep = Callable[[IngestContext], None]


@dataclass
class _Pending:
    interaction: Interaction
    future: asyncio.Future[IngestResult]


class Pipeline:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        steps: Sequence[IngestStep] = (),
        batch_max: int = 256,
        on_commit: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = writer(engine)
        self.steps = list(steps)
        self._batch_max = batch_max
        self._on_commit = on_commit
        self._clock = clock
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=batch_max * 40)
        self._writer: asyncio.Task[None] | None = None
        self.batches_committed = 0

    async def start(self) -> None:
        self._writer = asyncio.create_task(self._run(), name="omnihub-ingest-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop the writer."""
        if self._writer is None:
            return
        await self._queue.join()
        self._writer.cancel()
        try:
            await self._writer
        except asyncio.CancelledError:
            pass
        self._writer = None

    async def ingest(self, interaction: Interaction) -> IngestResult:
        if self._writer is None or self._writer.done():
            raise PipelineStopped("the ingest writer is not running")
        # The pipeline takes ownership of the interaction: set the hub's fields in place (the
        # writer copies it per attempt, so a retried batch starts from this state).
        interaction.id = new_id()
        interaction.received_at = self._clock()
        interaction.profile_id = None
        interaction.ruleset_version = None
        if interaction.provider_ref is None:
            # No provider id means no dedupe is possible; the row still needs a unique ref.
            interaction.provider_ref = f"omnihub:{interaction.id}"
        pending = _Pending(interaction, asyncio.get_running_loop().create_future())
        await self._queue.put(pending)
        return await pending.future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[_Pending]) -> None:
        for attempt in range(_CONFLICT_RETRIES):
            try:
                results = await self._write(batch)
            except (IntegrityError, OperationalError) as exc:
                if attempt + 1 < _CONFLICT_RETRIES and _is_conflict(exc):
                    log.info("ingest conflict, retrying", extra={"attempt": attempt + 1, "size": len(batch)})
                    continue
                error: BaseException = exc
            except Exception as exc:  # noqa: BLE001 - isolated below, item by item
                error = exc
            else:
                self.batches_committed += 1
                for pending, result in zip(batch, results, strict=True):
                    if not pending.future.done():
                        pending.future.set_result(result)
                if self._on_commit is not None:
                    self._on_commit()
                return
            break
        if len(batch) > 1:
            # One bad item must not fail its neighbours: commit each alone.
            for pending in batch:
                await self._commit([pending])
            return
        log.error("ingest failed", exc_info=error, extra={"interaction_id": str(batch[0].interaction.id)})
        if not batch[0].future.done():
            batch[0].future.set_exception(error)

    async def _write(self, batch: list[_Pending]) -> list[IngestResult]:
        now = self._clock()
        async with self._engine.begin() as conn:
            refs = [_ref(p.interaction) for p in batch]
            stored = await repo.find_interactions_by_ref(conn, refs)
            results: list[IngestResult | None] = [None] * len(batch)
            first_of: dict[repo.RefKey, int] = {}
            fresh: list[int] = []
            for i, ref in enumerate(refs):
                if ref in stored:
                    iid, pid = stored[ref]
                    results[i] = IngestResult(iid, pid, created=False)
                elif ref in first_of:
                    continue  # a repeat within this batch; answered from its first below
                else:
                    first_of[ref] = i
                    fresh.append(i)

            keys = list({k for i in fresh for k in _keys(batch[i].interaction)})
            plan = IdentityPlan(known=await repo.find_identifiers(conn, keys), now=now)
            assigned = [
                plan.resolve(_keys(batch[i].interaction), _display_name(batch[i].interaction)) for i in fresh
            ]
            profile_ids = [plan.final(pid) if pid else None for pid in assigned]
            existing = {pid for pid in profile_ids if pid and not plan.is_new(pid)}
            loaded = await repo.load_profiles(conn, list(existing)) if existing and self.steps else {}

            profile_rows = [
                {"id": pid, "created_at": now, "updated_at": now, "display_name": name, "attributes": "{}"}
                for pid, name in plan.new_profiles.items()
            ]
            events = [
                event_row(EventType.PROFILE_CREATED, now=now, subject=row["id"],
                          data={"profile_id": str(row["id"]), "display_name": row["display_name"]})
                for row in profile_rows
            ]
            interaction_rows: list[dict[str, Any]] = []
            writes: list[Write] = []
            for i, pid in zip(fresh, profile_ids, strict=True):
                # A copy per attempt: a retried batch must not see the steps' changes twice.
                original = batch[i].interaction
                item = original.model_copy(update={"profile_id": pid, "tags": list(original.tags)})
                ctx = IngestContext(
                    interaction=item,
                    profile=loaded.get(pid) if pid else None,
                    profile_created=pid is not None and plan.is_new(pid),
                    now=now,
                )
                for step in self.steps:
                    step(ctx)
                document = item.model_dump_json(exclude_none=True, by_alias=True)
                interaction_rows.append(_interaction_row(item, document))
                events.append(event_row(
                    EventType.INTERACTION_RECEIVED if item.direction == "inbound" else EventType.INTERACTION_SENT,
                    now=now, data_json=document, channel=item.channel, subject=pid,
                ))
                events.extend(ctx.events)
                writes.extend(ctx.writes)
                results[i] = IngestResult(item.id, pid, created=True)

            await repo.insert_rows(conn, profiles, profile_rows)
            for merge in plan.merges:
                moved = await repo.merge_profiles(conn, merge.survivor, merge.merged, at=now, reason=merge.reason)
                events.append(event_row(
                    EventType.PROFILE_MERGED, now=now, subject=merge.survivor,
                    data={"survivor_id": str(merge.survivor), "merged_id": str(merge.merged),
                          "reason": merge.reason, **moved},
                ))
            await repo.insert_rows(conn, identifiers, [
                {"type": t, "value": v, "profile_id": plan.final(pid), "created_at": now}
                for (t, v), pid in plan.new_identifiers.items()
            ])
            await repo.insert_rows(conn, interactions, interaction_rows)
            await repo.insert_rows(conn, outbox, events)
            for write in writes:
                await write(conn)

        for i, ref in enumerate(refs):
            if results[i] is None:
                first = results[first_of[ref]]
                assert first is not None
                results[i] = IngestResult(first.interaction_id, first.profile_id, created=False)
        return results  # type: ignore[return-value]


def _ref(item: Interaction) -> repo.RefKey:
    assert item.provider_ref is not None
    return (item.channel, item.provider, item.provider_ref)


def _keys(item: Interaction) -> list[repo.IdentKey]:
    return [ident.key for ident in item.identifiers()]


def _display_name(item: Interaction) -> str | None:
    return item.sender.display_name if item.sender is not None and item.direction == "inbound" else None


def _interaction_row(item: Interaction, document: str) -> dict[str, Any]:
    return {
        "id": item.id,
        "channel": item.channel,
        "provider": item.provider,
        "provider_ref": item.provider_ref,
        "direction": item.direction.value,
        "kind": item.kind.value,
        "occurred_at": item.occurred_at,
        "received_at": item.received_at,
        "conversation_key": item.conversation_key,
        "profile_id": item.profile_id,
        "priority": item.priority,
        "ruleset_version": item.ruleset_version,
        "document": document,
    }


def _is_conflict(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    # SQLite under a second writer process; PostgreSQL serialization/deadlock failures.
    text = str(exc.orig if hasattr(exc, "orig") else exc).lower()
    return "locked" in text or "deadlock" in text or "serializ" in text
