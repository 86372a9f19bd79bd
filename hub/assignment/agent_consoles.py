"""The agent-facing side of the router service: each agent's console websockets (subscribe,
unsubscribe), the offers pending for a console that (re)connects, the frames pushed after each
flush, and setting an agent offline when its last console has been closed for the grace period.

A mixin of RouterService (router_service.py), which owns the state it reads. Kept apart because
it is about browsers, not routing: its state (sockets, offline timers) never reaches the database,
and it changes the router only through the service's `run()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.assignment import store as store
from hub.assignment.task_views import _iso, _jsonable, task_view
from hub.settings import RoutingSettings
from routing import AgentEvent, Presence, Router, Task, TaskEvent, TaskEventKind, TaskState

log = logging.getLogger("omnihub.router")

_FRAME_BACKLOG = 1000


class AgentConsoles:
    """The agent websockets, for RouterService; its host provides `require()` and `run(op)`."""

    # Set by RouterService.__init__.
    _engine: AsyncEngine
    config: RoutingSettings
    router: Router | None
    _sockets: dict[str, set[asyncio.Queue[dict[str, Any]]]]
    _offline_timers: dict[str, asyncio.TimerHandle]
    _background: set[asyncio.Task[None]]

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
