"""The live router inside the hub (DESIGN section 7): one routing.Router, fed from the tasks table,
driven by the real clock, every decision persisted and published.

- Start: take the single-router lock (a PostgreSQL session advisory lock; SQLite is one process),
  write the configured queues and agents to their tables, rebuild the router from them and from
  the live tasks (Router.restore).
- Tasks arrive committed in state `new` (hub.routing_step, in the ingest transaction); the service
  picks them up on `notify()` (the pipeline's on_commit) or on a short poll of the state index.
- Timers: an asyncio task sleeps until `next_due()`, a wake-up or the poll interval, then advances.
- After every operation `flush()` drains the router's events and writes them in ONE transaction:
  task rows, the task_events log, agent rows and `task.*` outbox events; then pushes frames to the
  agents' websockets. An operation's caller is answered only after its events are durable.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.assignment import store as store
from hub.assignment import task_rules
from hub.broker.events import event_row
from hub.settings import RoutingSettings
from hub.storage.engine import is_sqlite, writer
from hub.tasks import cancel_and_wait
from routing import (
    AgentEvent,
    DuplicateTask,
    Presence,
    Router,
    SystemClock,
    Task,
    TaskEvent,
    TaskEventKind,
    TaskState,
    UnknownQueue,
    as_datetime,
)
from schemas import OmnihubError

log = logging.getLogger("omnihub.router")

T = TypeVar("T")
_LOCK_RETRY_S = 2.0
_LOCK_CHECK_S = 5.0
_FRAME_BACKLOG = 1000
_LIVE = (TaskState.WAITING, TaskState.OFFERED, TaskState.ASSIGNED, TaskState.WRAP_UP)


class RouterUnavailable(OmnihubError):
    """Routing is not configured, or another hub process holds the router lock."""


def _iso(seconds: float | None) -> str | None:
    return as_datetime(seconds).isoformat() if seconds is not None else None


def task_view(task: Task, state: TaskState | None = None) -> dict[str, Any]:
    """A task as the API and the agent console see it."""
    return {
        "id": task.id, "interaction_id": task.interaction_id, "profile_id": task.profile_id,
        "channel": task.channel, "queue": task.queue, "priority": task.priority,
        "state": (state or task.state).value, "agent_id": task.agent_id,
        "preferred_agent": task.preferred_agent, "required_skills": dict(task.required_skills),
        "enqueued_at": _iso(task.enqueued_at), "answered_at": _iso(task.answered_at),
        "ended_at": _iso(task.ended_at), "disposition": task.disposition, "note": task.note,
        "sla_breached": task.sla_breached,
    }


class RouterService:
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
        self._runner: asyncio.Task[None] | None = None
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
            self._runner = asyncio.create_task(self._run(), name="omnihub-router")

    async def stop(self) -> None:
        await cancel_and_wait(self._runner)
        self._runner = None
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
        elif self._runner is None or self._runner.done():
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
        while True:
            try:
                if not await self._acquire_lock():
                    await asyncio.sleep(_LOCK_RETRY_S)
                    continue
                await self._load()
                await self._loop()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("router failed; rebuilding from the database")
                self._deactivate()
                await self._release_lock()
                await asyncio.sleep(_LOCK_RETRY_S)

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
            timeout = self.config.poll_interval_s
            due = self.router.next_due()
            if due is not None:
                timeout = min(timeout, max(0.0, due - time.time()))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
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
            log.warning("advisory unlock failed", exc_info=True)
        finally:
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

    # --- persisting and publishing ---

    async def flush(self) -> None:
        async with self._flush_lock:
            router = self.router
            if router is None:
                return
            events = self._unflushed + router.drain_events()
            self._unflushed = []
            if not events and not self._dirty:
                return
            touched: dict[str, Task] = {}
            for tid in self._dirty:
                if tid in self._known:
                    touched[tid] = self._known[tid]
            agent_ids: set[str] = set()
            for ev in events:
                if isinstance(ev, TaskEvent):
                    task = self._known.get(ev.task_id)
                    if task is not None:
                        touched[ev.task_id] = task
                    if ev.agent_id is not None:
                        agent_ids.add(ev.agent_id)
                else:
                    agent_ids.add(ev.agent_id)
            now = datetime.now(UTC)
            # Rows are taken now, under the lock: while the write awaits, the router goes on
            # changing these Task objects, and the next flush writes those changes.
            params = [store.task_params(t, now) for t in touched.values()]
            finished = [tid for tid, t in touched.items() if t.state not in _LIVE]
            offered = [touched[e.task_id].interaction_id for e in events
                       if isinstance(e, TaskEvent) and e.kind is TaskEventKind.OFFERED and e.task_id in touched]
            try:
                summaries = await self._write(router, events, touched, params, agent_ids, offered, now)
            except Exception:
                self._unflushed = events  # written with the next flush; the caller is told it failed
                raise
            self._dirty.clear()
            for tid in finished:
                self._known.pop(tid, None)
        self._push(events, touched, summaries)

    async def _write(self, router: Router, events: list[TaskEvent | AgentEvent], touched: dict[str, Task],
                     params: list[dict[str, Any]], agent_ids: set[str], offered: list[str | None],
                     now: datetime) -> dict[str, dict[str, Any]]:
        event_rows, outbox_rows = [], []
        for ev in events:
            if isinstance(ev, AgentEvent):
                outbox_rows.append(event_row(ev.event_type, now=as_datetime(ev.at), data=ev.to_dict()))
                continue
            event_rows.append(store.task_event_row(ev))
            if ev.kind is not TaskEventKind.CREATED:  # task.created went out with the ingest commit
                task = touched.get(ev.task_id)
                data = {**(task_view(task, ev.state) if task is not None else {}), "event": _jsonable(ev.to_dict())}
                outbox_rows.append(event_row(ev.event_type, now=as_datetime(ev.at), channel=ev.channel,
                                             subject=task.profile_id if task else None, data=data))
        # Agents named by events are registered (the router refuses unknown ones).
        agent_rows = [store.agent_params(router.agent(aid), now) for aid in sorted(agent_ids)]
        fired = task_rules.collect(self.rules, events, touched, task_view)

        def work(conn: Any) -> dict[str, dict[str, Any]]:
            store.persist(conn, task_list=params, event_rows=event_rows, outbox_rows=outbox_rows,
                          agent_rows=agent_rows, now=now)
            task_rules.apply(conn, fired, now, self.segment_set)
            return store.interaction_summaries(conn, [i for i in offered if i])

        async with writer(self._engine).begin() as conn:
            summaries = await conn.run_sync(work)
        task_rules.escalate(router, fired, self._wake.set)
        return summaries

    # --- agent websockets ---

    def subscribe(self, agent_id: str) -> asyncio.Queue[dict[str, Any]]:
        frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_FRAME_BACKLOG)
        self._sockets.setdefault(agent_id, set()).add(frames)
        handle = self._offline_timers.pop(agent_id, None)
        if handle is not None:
            handle.cancel()
        return frames

    def unsubscribe(self, agent_id: str, frames: asyncio.Queue[dict[str, Any]]) -> None:
        subs = self._sockets.get(agent_id)
        if subs is not None:
            subs.discard(frames)
            if not subs:
                del self._sockets[agent_id]
                self._offline_later(agent_id)

    def _offline_later(self, agent_id: str) -> None:
        """The agent's last console closed: unless one reconnects within the grace, set it offline,
        so offers stop going to a closed browser (its pending ones return to the line at once)."""
        grace = self.config.router.offline_grace_s
        if grace is None or self.router is None:
            return

        def fire() -> None:
            self._offline_timers.pop(agent_id, None)
            job = asyncio.create_task(self._disconnected(agent_id))
            self._background.add(job)
            job.add_done_callback(self._background.discard)

        self._offline_timers[agent_id] = asyncio.get_running_loop().call_later(grace, fire)

    async def _disconnected(self, agent_id: str) -> None:
        router = self.router
        if router is None or agent_id in self._sockets:
            return
        try:
            if router.agent(agent_id).presence is not Presence.OFFLINE:
                await self.run(lambda r: r.set_presence(agent_id, Presence.OFFLINE, reason="disconnected"))
        except Exception:
            log.warning("could not set a disconnected agent offline", extra={"agent_id": agent_id}, exc_info=True)

    async def offer_frames(self, agent_id: str) -> list[dict[str, Any]]:
        """Offers already pending for an agent who (re)connects."""
        router = self.require()
        pending = [t for t in router.agent_tasks(agent_id) if t.state is TaskState.OFFERED]
        if not pending:
            return []
        async with self._engine.connect() as conn:
            summaries = await conn.run_sync(store.interaction_summaries, [t.interaction_id for t in pending if t.interaction_id])
        expiry = self.config.router.offer_timeout_s
        return [_offer_frame(t, summaries, (t.offered_at or 0) + expiry) for t in pending]

    def _push(self, events: list[TaskEvent | AgentEvent], tasks: dict[str, Task],
              summaries: dict[str, dict[str, Any]]) -> None:
        if not self._sockets:
            return
        for ev in events:
            subs = self._sockets.get(ev.agent_id) if ev.agent_id is not None else None
            if not subs:
                continue
            if isinstance(ev, AgentEvent):
                frame = {"type": "presence", "agent_id": ev.agent_id, "presence": ev.presence.value,
                         "reason": ev.details.get("reason")}
            elif (task := tasks.get(ev.task_id)) is None:
                continue
            elif ev.kind is TaskEventKind.OFFERED:
                frame = _offer_frame(task, summaries, ev.details.get("expires_at"))
            else:
                frame = {"type": "task", "event": ev.kind.value, "task": task_view(task, ev.state),
                         "details": _jsonable(ev.details)}
            for frames in list(subs):
                try:
                    frames.put_nowait(frame)
                except asyncio.QueueFull:
                    log.warning("agent console not reading; frame dropped", extra={"agent_id": ev.agent_id})


def _offer_frame(task: Task, summaries: dict[str, dict[str, Any]], expires_at: float | None) -> dict[str, Any]:
    return {
        "type": "offer", "task_id": task.id, "channel": task.channel, "queue": task.queue,
        "priority": task.priority, "profile_id": task.profile_id,
        "interaction": summaries.get(task.interaction_id or "", {"id": task.interaction_id}),
        "expires_at": _iso(expires_at),
        # Also relative: a console counts down on its own clock, which may not agree with ours.
        "expires_in_s": None if expires_at is None else max(0.0, round(expires_at - time.time(), 1)),
    }


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    return {k: (sorted(v) if isinstance(v, set) else v) for k, v in details.items()}
