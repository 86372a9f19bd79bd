"""The agent-facing side of the router service: each agent's console websockets (subscribe,
unsubscribe), the offers pending for a console that (re)connects, the frames pushed after each
flush, and setting an agent offline when its last console has been closed for the grace period.

Several hubs: the router is active on one of them, consoles connect to any. The active one pushes
each frame to its own consoles and hands it to `tell_peers` (hub.channels.peers, wired by the app);
the others put what their peers tell them (`from_peer`) on their own consoles, and greet a console
from the tables the router writes (`stored_hello`).

A mixin of RouterService (router_service.py), which owns the state it reads. Kept apart because
it is about browsers, not routing: its state (sockets, offline timers) never reaches the database,
and it changes the router only through the service's `run()`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.assignment import store as store
from hub.assignment.task_views import _jsonable, iso_time, task_view
from hub.settings import RoutingSettings
from hub.storage.routing_models import agents as agent_rows
from hub.storage.routing_models import tasks as task_rows
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
    # Set by the app when other hubs may hold consoles (hub.channels.router_link.link): hand a
    # frame to them (raises ValueError for one too large); whether one of them holds a console
    # for the agent; tell the routing hub that the last console here closed.
    tell_peers: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    held_elsewhere: Callable[[str], Awaitable[bool]] | None = None
    report_disconnected: Callable[[str], Awaitable[None]] | None = None
    _peer_tail: asyncio.Task[None] | None = None

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
        if grace is None or (self.router is None and self.report_disconnected is None):
            return

        def fire() -> None:
            self._offline_timers.pop(agent_id, None)
            job = asyncio.create_task(self._last_console_closed(agent_id))
            self._background.add(job)
            job.add_done_callback(self._background.discard)

        self._offline_timers[agent_id] = asyncio.get_running_loop().call_later(grace, fire)

    async def _last_console_closed(self, agent_id: str) -> None:
        if agent_id in self._sockets:
            return
        if self.router is None and self.report_disconnected is not None:
            await self.report_disconnected(agent_id)  # the routing hub decides: it may be connected there
        else:
            await self.disconnected(agent_id)

    async def disconnected(self, agent_id: str) -> None:
        """No console for the agent here for the grace period: offline, unless another hub holds one
        (a console that reconnected through the balancer lands on any hub)."""
        router = self.router
        if router is None or agent_id in self._sockets:
            return
        try:
            if self.held_elsewhere is not None and await self.held_elsewhere(agent_id):
                return
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
        outgoing: list[tuple[str, dict[str, Any]]] = []
        for ev in events:
            if ev.agent_id is None or (not self._sockets.get(ev.agent_id) and self.tell_peers is None):
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
            self.deliver(ev.agent_id, frame)
            outgoing.append((ev.agent_id, frame))
        if outgoing and self.tell_peers is not None:
            self._tell_peers_later(outgoing)

    def deliver(self, agent_id: str, frame: dict[str, Any]) -> None:
        """Onto the agent's consoles connected to this hub."""
        for frames in list(self._sockets.get(agent_id, ())):
            try:
                frames.put_nowait(frame)
            except asyncio.QueueFull:
                log.warning("agent console not reading; frame dropped", extra={"agent_id": agent_id})

    async def console_held(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """A peer asks whether a console for the agent is open here; no answer means no."""
        return {"held": True} if body.get("agent") in self._sockets else None

    async def from_peer(self, body: dict[str, Any]) -> None:
        """A frame the routing hub pushed, for consoles that may be connected here."""
        agent_id, frame = body.get("agent"), body.get("frame")
        if isinstance(agent_id, str) and isinstance(frame, dict) and self.router is None:
            self.deliver(agent_id, frame)

    def _tell_peers_later(self, outgoing: list[tuple[str, dict[str, Any]]]) -> None:
        """After the flush, in flush order: each batch waits for the one before it."""
        previous, tell = self._peer_tail, self.tell_peers
        assert tell is not None

        async def send() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            for agent_id, frame in outgoing:
                try:
                    await tell({"agent": agent_id, "frame": frame})
                except ValueError:  # over 256 KiB: no frame the router makes comes near
                    log.warning("frame too large for peers; dropped", extra={"agent_id": agent_id})

        job = asyncio.create_task(send())
        self._peer_tail = job
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def stored_hello(self, agent_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """On a hub that is not routing: the agent and its pending offers as the router last wrote
        them; None for an agent the tables do not know."""
        async with self._engine.connect() as conn:
            found = await conn.run_sync(_stored_agent, agent_id)
        if found is None:
            return None
        agent, offered = found
        expiry = self.config.router.offer_timeout_s
        return agent, [_offer_frame(t, summaries, (t.offered_at or 0) + expiry) for t, summaries in offered]


def _stored_agent(conn: Connection, agent_id: str) -> tuple[dict[str, Any], list[tuple[Task, dict[str, Any]]]] | None:
    row = conn.execute(select(agent_rows).where(agent_rows.c.id == agent_id)).mappings().first()
    if row is None:
        return None
    held = [store.task_from_row(r) for r in conn.execute(
        select(task_rows).where(task_rows.c.agent_id == agent_id, task_rows.c.state.in_(store.LIVE))).mappings()]
    agent = {"id": row["id"], "presence": row["presence"], "idle_since": iso_time(row["idle_since"].timestamp())
             if row["idle_since"] else None, "missed_in_row": row["missed_in_row"],
             "tasks": {t.id: t.state.value for t in held}, "skills": json.loads(row["skills"] or "{}")}
    offered = [t for t in held if t.state is TaskState.OFFERED]
    summaries = store.interaction_summaries(conn, [t.interaction_id for t in offered if t.interaction_id])
    return agent, [(t, summaries) for t in offered]


def _offer_frame(task: Task, summaries: dict[str, dict[str, Any]], expires_at: float | None) -> dict[str, Any]:
    return {
        "type": "offer", "task_id": task.id, "channel": task.channel, "queue": task.queue,
        "priority": task.priority, "profile_id": task.profile_id,
        "interaction": summaries.get(task.interaction_id or "", {"id": task.interaction_id}),
        "expires_at": iso_time(expires_at),
        # Also relative: a console counts down on its own clock, which may not agree with ours.
        "expires_in_s": None if expires_at is None else max(0.0, round(expires_at - time.time(), 1)),
    }
