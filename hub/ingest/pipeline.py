"""The ingest pipeline: every interaction is committed together with its profile changes and
outbox events, in one transaction, so a crash leaves all or nothing and a 2xx means all of it is
durable (DESIGN section 1).

Concurrent ingests share commits: one writer task takes whatever is queued and commits it as one
group (hub.ingest.batch_write), so the fsync a durable answer needs is paid once per group. On SQLite the
group's statements run with the stdlib driver on the event loop's thread and its COMMIT on a
writer thread, so the loop keeps serving HTTP while SQLite syncs (see _SqliteWriter). On
PostgreSQL the unit runs through AsyncConnection.run_sync on asyncpg.

When a group fails because the database is out (hub.http_errors.unavailable_cause), every
interaction in it, and every one queued behind it meanwhile, fails at once with
DatabaseUnavailable (answered 503): none was committed, none is retried alone (that would wait out
the outage once per interaction), and none is logged here (the HTTP side logs the outage once).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.http_errors import ServiceUnavailable, outage_name, unavailable_cause
from hub.ids import new_id
from hub.ingest.batch_write import IngestContext, IngestResult, IngestStep, write_batch
from hub.profiles.identity import DEFAULT_POLICY, ProfilePolicy
from hub.storage.engine import create_sync_sqlite_engine, is_sqlite, writer
from hub.tasks import cancel_and_wait
from schemas import Interaction

__all__ = ["DatabaseUnavailable", "IngestContext", "IngestResult", "IngestStep", "Pipeline", "PipelineStopped"]

log = logging.getLogger("omnihub.pipeline")

# Another process may insert the same identifier or provider ref between our read and our write;
# the unique constraints refuse it and a fresh attempt sees the other's row.
_CONFLICT_RETRIES = 5


# The default clock: a C call, no Python frame per ingest.
_utc_now = functools.partial(datetime.now, UTC)


class PipelineStopped(ServiceUnavailable):
    pass


class DatabaseUnavailable(ServiceUnavailable):
    """The group commit an interaction waited on failed for an outage; the database error is its __cause__."""


class _UnitOfWork(Protocol):
    async def run(self, fn: Callable[..., Any], *args: Any) -> Any: ...
    async def close(self) -> None: ...


class _SqliteWriter:
    """Runs a unit of work's statements on the event loop's thread and its COMMIT on a thread of its own.

    The statements are Python and CPU-bound: on another thread they only took turns with the event
    loop for the GIL and the caches (A/B runs of bench/ingest.py: 470-600 us of CPU per interaction
    that way, 360-430 us this way). The COMMIT is the fsync, a wait: the loop goes on serving
    requests while the writer thread sits in it.

    The loop never waits for SQLite's lock (a coroutine on this same loop may hold it, mid-way through
    its own transaction): when another connection is writing, BEGIN IMMEDIATE fails at once and the
    whole unit runs on the writer thread instead, on a connection that waits for the lock.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine: Engine = writer(create_sync_sqlite_engine(engine.url, wait_for_lock=False))  # type: ignore[assignment]
        self._waiting_engine: Engine = writer(create_sync_sqlite_engine(engine.url))  # type: ignore[assignment]
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="omnihub-writer")
        # Kept between groups: a pool checkout and its reset-on-return cost ~85 us a group.
        self._conn: Connection | None = None

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._conn is None:
            self._conn = self._engine.connect()
        conn = self._conn
        try:
            transaction = conn.begin()
        except OperationalError as exc:
            if not _is_locked(exc):
                self._discard()
                raise
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._in_transaction, fn, args)
        try:
            result = fn(conn, *args)
        except BaseException:
            transaction.rollback()
            raise
        commit = self._thread.submit(transaction.commit)
        try:
            await asyncio.wrap_future(commit)
        except asyncio.CancelledError:
            # Never leave the connection to anyone else while a COMMIT still runs on the writer thread.
            commit.result()
            raise
        except BaseException:
            self._discard()  # a failed COMMIT may leave the transaction half-closed: start afresh
            raise
        return result

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.invalidate()
            self._conn.close()
            self._conn = None

    def _in_transaction(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        with self._waiting_engine.begin() as conn:
            return fn(conn, *args)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._engine.dispose()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._waiting_engine.dispose)
        self._thread.shutdown(wait=True)


class _AsyncBridge:
    """Runs a unit of work through the async engine (asyncpg), in one transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = writer(engine)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        async with self._engine.begin() as conn:
            return await conn.run_sync(fn, *args)

    async def close(self) -> None:
        pass


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
        on_commit: Sequence[Callable[[], None]] = (),
        clock: Callable[[], datetime] = _utc_now,
        policy: ProfilePolicy = DEFAULT_POLICY,
    ) -> None:
        self._engine = engine
        self.steps = list(steps)
        self.policy = policy
        self._batch_max = batch_max
        # Told after every commit (the outbox relay, the router): wake up now rather than poll.
        self.on_commit = list(on_commit)
        self._clock = clock
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=batch_max * 40)
        self._writer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unit: _UnitOfWork | None = None
        self.batches_committed = 0

    async def start(self) -> None:
        # Kept: on Python 3.11 every get_running_loop() is a getpid() system call.
        self._loop = asyncio.get_running_loop()
        self._unit = _SqliteWriter(self._engine) if is_sqlite(self._engine) else _AsyncBridge(self._engine)
        self._writer = asyncio.create_task(self._run(), name="omnihub-ingest-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop the writer."""
        if self._writer is None:
            return
        await self._queue.join()
        await cancel_and_wait(self._writer)
        self._writer = None
        if self._unit is not None:
            await self._unit.close()
            self._unit = None

    async def ingest(self, interaction: Interaction) -> IngestResult:
        if self._writer is None or self._writer.done():
            raise PipelineStopped("the ingest writer is not running")
        # The pipeline takes ownership of the interaction and sets the hub's fields in place; the
        # unit of work copies it per attempt, so a retried batch starts from this state.
        interaction.id = new_id()
        interaction.received_at = self._clock()
        interaction.profile_id = None
        interaction.ruleset_version = None
        if interaction.provider_ref is None:
            # No provider id means no dedupe is possible; the row still needs a unique ref.
            interaction.provider_ref = f"omnihub:{interaction.id}"
        pending = _Pending(interaction, self._loop.create_future())  # type: ignore[union-attr]
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
        assert self._unit is not None
        items = [p.interaction for p in batch]
        work = functools.partial(write_batch, batch=items, steps=tuple(self.steps), now=self._clock(),
                                 policy=self.policy)
        for attempt in range(_CONFLICT_RETRIES):
            try:
                results = await self._unit.run(_call, work)
            except Exception as exc:  # noqa: BLE001 - isolated below, item by item
                if unavailable_cause(exc) is not None:
                    # An outage: everyone waiting fails at once, nothing is retried alone.
                    self._refuse([*batch, *self._take_queued()], exc)
                    return
                if (isinstance(exc, IntegrityError | OperationalError) and attempt + 1 < _CONFLICT_RETRIES
                        and _is_conflict(exc)):
                    log.info("ingest conflict, retrying", extra={"attempt": attempt + 1, "size": len(batch)})
                    continue
                error: BaseException = exc
            else:
                self.batches_committed += 1
                for pending, result in zip(batch, results, strict=True):
                    if not pending.future.done():
                        pending.future.set_result(result)
                for listener in self.on_commit:
                    listener()
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

    def _take_queued(self) -> list[_Pending]:
        """Whatever queued while the failing group waited out the database's timeout: sent round
        again it would wait that long once more."""
        taken = []
        while not self._queue.empty():
            taken.append(self._queue.get_nowait())
            self._queue.task_done()
        return taken

    def _refuse(self, pending: list[_Pending], exc: Exception) -> None:
        log.debug("ingest group refused, database unavailable", extra={"size": len(pending), "error": outage_name(exc)})
        for item in pending:
            if not item.future.done():
                # One exception each: a single one raised in every waiting request would grow its
                # traceback with each of them.
                refused = DatabaseUnavailable("the database is unavailable")
                refused.__cause__ = exc
                item.future.set_exception(refused)


def _call(conn: Connection, work: Callable[..., Any]) -> Any:
    return work(conn)


def _is_locked(exc: OperationalError) -> bool:
    return "locked" in str(exc.orig).lower()


def _is_conflict(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    # SQLite under a second writer process; PostgreSQL serialization/deadlock failures.
    text = str(getattr(exc, "orig", exc)).lower()
    return "locked" in text or "deadlock" in text or "serializ" in text
