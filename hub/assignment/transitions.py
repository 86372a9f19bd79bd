"""Persisting and publishing the router's transitions: `flush()` drains the router's events and
writes them in ONE transaction (task rows, the task_events log, agent rows, `task.*` outbox events,
the task rules' effects), then hands them to the agent consoles to push.

A mixin of RouterService (router_service.py), which owns the state it reads: the flush is the
service's one path to the database for transitions, kept apart from the lifecycle that calls it and
from the consoles it feeds. Its host provides `_push(events, tasks, summaries)` (agent_consoles.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.assignment import store as store
from hub.assignment import task_rules
from hub.assignment.task_views import _jsonable, task_view
from hub.broker.events import event_row
from hub.storage.engine import writer
from routing import AgentEvent, Router, Task, TaskEvent, TaskEventKind, TaskState, as_datetime

_LIVE = (TaskState.WAITING, TaskState.OFFERED, TaskState.ASSIGNED, TaskState.WRAP_UP)


class TransitionFlush:
    """flush() and its transaction, for RouterService."""

    # Set by RouterService.__init__.
    _engine: AsyncEngine
    router: Router | None
    rules: Any
    segment_set: Any
    _known: dict[str, Task]
    _dirty: set[str]
    _unflushed: list[TaskEvent | AgentEvent]
    _flush_lock: asyncio.Lock
    _wake: asyncio.Event

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
