"""Routing operations from agents connected to any hub: run where the router is active.

One hub routes (the PostgreSQL advisory lock, hub.assignment.router_service); behind a load
balancer an agent's accept, decline, wrap-up or presence change reaches any hub. A hub that is not
routing asks its peers (hub.channels.peers) and the routing hub answers with the outcome: the
task's or agent's view, or the routing error it raised, rebuilt here as the same exception so the
API answers as if the router were local. No answer in time (no hub routing, the routing hub cut
off) is RouterUnavailable, which the API answers 503.

Operations are named, not shipped as code: `OPERATIONS` is what a peer may ask for.

An agent goes offline when its last console has been closed for the grace period (DESIGN section
7); with consoles on any hub, a console closing on one hub says nothing of the others (a browser
reconnecting through the balancer lands anywhere). So the routing hub, before setting an agent
offline, asks whether any hub holds a console for it, and a hub that is not routing reports its
last console closing to the routing hub instead of deciding itself.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from hub.assignment.router_service import RouterService, RouterUnavailable, task_view
from hub.assignment.task_views import iso_time
from hub.channels.peers import NoPeerAnswered, Peers
from routing import (
    Agent,
    InvalidTransition,
    Presence,
    Router,
    RoutingError,
    Task,
    UnknownAgent,
    UnknownQueue,
    UnknownTask,
)

log = logging.getLogger("omnihub.peers")

KIND = "router.op"
FRAMES = "agent.frame"
CONSOLES = "agent.console"
ANSWER_TIMEOUT_S = 10.0
# How long the routing hub waits for a hub holding the agent's console before it sets the agent
# offline: a hub slower than this costs the agent a presence change, not a lost task.
HELD_TIMEOUT_S = 2.0

OPERATIONS: dict[str, Callable[[Router, dict[str, Any]], Task | Agent]] = {
    "accept": lambda r, a: r.accept(a["task_id"], a["agent_id"]),
    "decline": lambda r, a: r.decline(a["task_id"], a["agent_id"], a.get("reason")),
    "transfer": lambda r, a: r.transfer(a["task_id"], queue=a.get("queue"), agent_id=a.get("agent_id")),
    "wrapup": lambda r, a: r.wrapup(a["task_id"], a.get("disposition"), a.get("note")),
    "complete": lambda r, a: r.complete(a["task_id"], a.get("disposition"), a.get("note")),
    "abandon": lambda r, a: r.abandon(a["task_id"]),
    "cancel": lambda r, a: r.cancel(a["task_id"], a.get("reason")),
    "presence": lambda r, a: r.set_presence(a["agent_id"], Presence(a["presence"])),
}
_ERRORS: dict[str, type[RoutingError]] = {
    cls.__name__: cls for cls in (InvalidTransition, UnknownAgent, UnknownQueue, UnknownTask, RoutingError)}


def view(result: Task | Agent) -> dict[str, Any]:
    """What the API answers: a task's view, or an agent's presence."""
    if isinstance(result, Task):
        return task_view(result)
    return {"id": result.id, "presence": result.presence.value, "idle_since": iso_time(result.idle_since)}


async def perform(service: RouterService, peers: Peers, op: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run `op` on the active router, here or on a peer; raises what the router raised."""
    if service.router is not None or not peers.shared or not service.enabled:
        return view(await service.run(lambda router: OPERATIONS[op](router, args)))
    try:
        answer = await peers.request(KIND, {"op": op, "args": args}, ANSWER_TIMEOUT_S)
    except NoPeerAnswered:
        raise RouterUnavailable("no hub process is routing right now; try again shortly") from None
    if "error" in answer:
        raise _ERRORS.get(answer["error"], RoutingError)(answer.get("message", "refused"))
    return answer["result"]


def link(service: RouterService, peers: Peers) -> None:
    """Wire the router service to the other hubs: its frames out to their consoles, theirs in,
    operations asked of it, and agents' consoles closed there."""
    if not peers.shared:
        return
    service.tell_peers = functools.partial(peers.publish, FRAMES)
    peers.subscribe(FRAMES, service.from_peer)
    peers.subscribe(CONSOLES, service.console_held)
    peers.subscribe(KIND, answering(service))

    async def held_elsewhere(agent_id: str) -> bool:
        try:
            await peers.request(CONSOLES, {"agent": agent_id}, HELD_TIMEOUT_S)
        except NoPeerAnswered:
            return False
        return True

    async def report_disconnected(agent_id: str) -> None:
        try:
            await peers.request(KIND, {"op": "disconnected", "args": {"agent_id": agent_id}}, ANSWER_TIMEOUT_S)
        except NoPeerAnswered:
            log.warning("no routing hub heard that an agent's console closed", extra={"agent_id": agent_id})

    service.held_elsewhere = held_elsewhere
    service.report_disconnected = report_disconnected


def answering(service: RouterService) -> Callable[[dict[str, Any]], Any]:
    """The handler of peers' operations: answers only while this hub routes."""
    async def answer(body: dict[str, Any]) -> dict[str, Any] | None:
        args = body.get("args")
        if service.router is None or not isinstance(args, dict):
            return None
        if body.get("op") == "disconnected":  # a console closed on another hub
            await service.disconnected(str(args.get("agent_id")))
            return {"result": {}}
        op = OPERATIONS.get(str(body.get("op")))
        if op is None:
            return None
        try:
            return {"result": view(await service.run(lambda router: op(router, args)))}
        except RouterUnavailable:
            return None  # lost the lock meanwhile: the hub routing now answers instead
        except (RoutingError, KeyError, ValueError) as exc:
            name = type(exc).__name__ if isinstance(exc, RoutingError) else "RoutingError"
            return {"error": name, "message": str(exc)}

    return answer
