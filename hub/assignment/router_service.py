"""The live router inside the hub (DESIGN section 7): one routing.Router, fed from the tasks table,
driven by the real clock, every decision persisted and published.

- Start: take the single-router lock (a PostgreSQL session advisory lock; SQLite is one process),
  write the configured queues and agents to their tables, rebuild the router from them and from
  the live tasks (Router.restore).
- Tasks arrive committed in state `new` (hub.ingest.routing_step, in the ingest transaction); the service
  picks them up on `notify()` (the pipeline's on_commit) or on a short poll of the state index.
- Timers: an asyncio task sleeps until `next_due()`, a wake-up or the poll interval, then advances.
- After every operation `flush()` drains the router's events and writes them in ONE transaction:
  task rows, the task_events log, agent rows and `task.*` outbox events; then pushes frames to the
  agents' websockets. An operation's caller is answered only after its events are durable.

This module holds the service's lifecycle (start, stop, the single-router lock, loading, picking up
new tasks) and its operations; the flush lives in transitions.py, the agent websockets in
agent_consoles.py and the task's outside shape in task_views.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.assignment import store as store
from hub.assignment.agent_consoles import AgentConsoles
from hub.assignment.task_views import task_view
from hub.assignment.transitions import TransitionFlush
from hub.settings import RoutingSettings
from hub.storage.engine import is_sqlite, writer
from hub.tasks import Supervised
from routing import AgentEvent, DuplicateTask, Router, SystemClock, Task, TaskEvent, UnknownQueue
from schemas import OmnihubError

# task_view is imported from here by the API.
__all__ = ["RouterService", "RouterUnavailable", "task_view"]

log = logging.getLogger("omnihub.router")

T = TypeVar("T")
_LOCK_RETRY_S = 2.0
_LOCK_CHECK_S = 5.0


class RouterUnavailable(OmnihubError):
    """Routing is not configured, or another hub process holds the router lock."""


class RouterService(TransitionFlush, AgentConsoles):
    def __init__(self, engine: AsyncEngine, config: RoutingSettings) -> None:
        self._engine = engine
        self.config = config
        self.enabled = bool(config.queues)
        self.router: Router | None = None
        self.display_names: dict[str, str | None] = {}
        # The Task objects the router holds, kept here too: a finished task leaves the router but
        # its final state is still needed to write its row.
        self._known: dict[str, Task] = {}
        self._dirty: set[str] = set()
        self._unflushed: list[TaskEvent | AgentEvent] = []
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self.supervised = Supervised("router", self._run)
        self._lock_conn: AsyncConnection | None = None
        self._sockets: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._offline_timers: dict[str, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.active = asyncio.Event()
        self.rules: Any = None  # the hub's LiveRules (hub.automation.live): task.* rules run at each flush
        self.segment_set: Any = None  # configured segments, re-evaluated when those rules change a profile

    # --- lifecycle ---

    async def start(self) -> None:
        if self.enabled:
            await self.supervised.start()

    async def stop(self) -> None:
        await self.supervised.stop()
        for handle in self._offline_timers.values():
            handle.cancel()
        for job in list(self._background):
            job.cancel()
        self._offline_timers.clear()
        if self.router is not None:
            try:
                await self.flush()
            except Exception:
                log.exception("final router flush failed")
        self._deactivate()
        await self._release_lock()

    def status(self) -> dict[str, Any]:
        """For /readyz: `disabled` (no queues), `starting` (loading its state), `standby` (another
        hub holds the routing lock), `active`, or `stopped`."""
        if not self.enabled:
            state = "disabled"
        elif self.active.is_set():
            state = "active"
        elif not self.supervised.running:
            state = "stopped"
        elif self._lock_conn is None and not is_sqlite(self._engine):
            state = "standby"
        else:
            state = "starting"
        return {"state": state}

    def notify(self) -> None:
        """Something was committed (the pipeline's on_commit): look for new tasks now."""
        self._wake.set()

    async def _run(self) -> None:
        """The supervised body: stand by until this hub holds the routing lock, then route. On a
        failure the router is dropped and, after the backoff, rebuilt from the database."""
        try:
            while not await self._acquire_lock():
                self.supervised.progressed()  # standing by is healthy: another hub routes
                with self.supervised.waiting():
                    await asyncio.sleep(_LOCK_RETRY_S)
            await self._load()
            await self._loop()
        except Exception:
            self._deactivate()
            await self._release_lock()
            raise

    def _deactivate(self) -> None:
        self.active.clear()
        self.router = None
        self._known.clear()
        self._dirty.clear()
        self._unflushed.clear()

    async def _loop(self) -> None:
        assert self.router is not None
        checked = time.monotonic()
        while True:
            await self._pick_up_new()
            self.router.advance()
            await self.flush()
            self.supervised.progressed()
            timeout = self.config.poll_interval_s
            due = self.router.next_due()
            if due is not None:
                timeout = min(timeout, max(0.0, due - time.time()))
            with self.supervised.waiting(), contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if self._lock_conn is not None and time.monotonic() - checked > _LOCK_CHECK_S:
                # A dead lock connection means the lock is gone: another hub may be routing now.
                await self._lock_conn.execute(text("SELECT 1"))
                await self._lock_conn.commit()
                checked = time.monotonic()

    # --- the single-router lock ---

    async def _acquire_lock(self) -> bool:
        if is_sqlite(self._engine):
            return True
        conn = await self._engine.connect()
        try:
            got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.config.lock_key})).scalar()
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self._lock_conn = conn
        return True

    async def _release_lock(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is None:
            return
        try:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.config.lock_key})
            await conn.commit()
        except Exception:
            # The connection is gone (why the router failed, as a rule), and the lock with it.
            log.debug("advisory unlock failed", exc_info=True)
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    # --- loading ---

    async def _load(self) -> None:
        now = datetime.now(UTC)
        since = now - timedelta(seconds=self.config.router.stats_window_s)
        async with writer(self._engine).begin() as conn:
            await conn.run_sync(store.sync_config, self.config.queues, self.config.agents, now)
            queues, agents, live = await conn.run_sync(store.load_state)
            window = await conn.run_sync(store.load_window, since)
        router = Router(SystemClock(), self.config.router)
        for q in queues:
            router.add_queue(q)
        self.display_names = {a["id"]: a.pop("display_name") for a in agents}
        known_queues = {q.name for q in queues}
        live = [t for t in live if t.queue in known_queues]
        router.restore(tasks=live, agents=agents)
        for name, (answered, abandoned) in window.items():
            router.restore_window(name, answered, abandoned)
        self._known = {t.id: t for t in live}
        # Restore turns pending offers back into waiting tasks without an event; write that down.
        self._dirty = {t.id for t in live}
        self.router = router
        self.active.set()
        await self.flush()
        log.info("router active", extra={"queues": len(queues), "agents": len(agents), "tasks": len(live)})

    async def _pick_up_new(self) -> None:
        assert self.router is not None
        async with self._engine.connect() as conn:
            fresh = await conn.run_sync(store.fetch_new)
        for task in fresh:
            if task.id in self._known:
                continue  # submitted, its flush failed; the row is still `new`
            try:
                self.router.submit(task)
            except UnknownQueue:
                if self.config.default_queue is None:
                    log.error("task for unknown queue", extra={"task_id": task.id, "queue": task.queue})
                    continue
                task.queue = self.config.default_queue
                self.router.submit(task)
            except DuplicateTask:
                continue
            self._known[task.id] = task

    # --- operations (API and websocket) ---

    def require(self) -> Router:
        if not self.enabled:
            raise RouterUnavailable("routing is not configured (no queues)")
        if self.router is None:
            raise RouterUnavailable("the router is not active on this hub process")
        return self.router

    async def run(self, op: Callable[[Router], T]) -> T:
        """Apply one router operation and answer once its events are durable."""
        result = op(self.require())
        await self.flush()
        return result

    async def stored_state(self, task_id: str) -> str | None:
        """The persisted state of a task the router no longer holds (finished), or None if unknown."""
        try:
            key = uuid.UUID(task_id)
        except ValueError:
            return None
        async with self._engine.connect() as conn:
            return await conn.run_sync(store.task_state, key)
