"""The agent console's websocket, `GET /v1/agents/ws?agent_id=...` (issue 6; names in DESIGN
section 11): offers and task updates pushed, `accept`/`decline` frames in. Opened with a one-time
ticket and closed once its credentials end (hub.access.sockets); operations run on whichever hub
routes (hub.api.routing's perform)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import Field, ValidationError

from hub import keys
from hub.access.auth import Scope, principal, requires, restricted_agent
from hub.access.sockets import CLOSE_CREDENTIALS_ENDED, WatchedSocket, origin_refusal
from hub.api.confine import not_self
from hub.api.routing import _Body, perform, refusal_body
from hub.assignment.router_service import RouterUnavailable
from hub.assignment.task_views import iso_time
from hub.http_errors import dumps, error_response
from routing import RoutingError, UnknownAgent

routes = web.RouteTableDef()


class Frame(_Body):
    op: str = Field(pattern="^(accept|decline)$")
    task_id: str = Field(min_length=1, max_length=64)
    reason: str | None = Field(None, max_length=200)



@routes.get("/v1/agents/ws")
@requires(Scope.TASKS)
async def agent_socket(request: web.Request) -> web.StreamResponse:
    """The agent console's websocket: offers and task updates out, accept/decline in. With auth on,
    it opens with a one-time `?ticket=` (POST /v1/auth/ws-ticket; browsers cannot give a websocket
    headers) and closes (4401) once the credentials end. Pages of other origins are refused."""
    if (refusal := origin_refusal(request, request.app[keys.SETTINGS].auth.socket_origins)) is not None:
        return refusal
    agent_id = request.query.get("agent_id") or restricted_agent(request)
    if (refusal := not_self(request, agent_id)) is not None:
        return refusal
    if not agent_id:
        return error_response(400, "missing_agent_id", "agent_id query parameter is required",
                              [{"field": "agent_id", "message": "required"}])
    service = request.app[keys.ROUTER]
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    try:
        agent, pending = await _greeting(request, agent_id)
    except (RoutingError, RouterUnavailable) as exc:
        refusal = await refusal_body(request, exc)
        await ws.send_str(dumps({"type": "error", **refusal}))
        await ws.close()
        return ws
    frames = service.subscribe(agent_id)
    sender = asyncio.create_task(_send_frames(ws, frames))
    watched = _watch(request, ws)
    try:
        await ws.send_str(dumps({"type": "hello", "agent": agent}))
        for frame in pending:
            await ws.send_str(dumps(frame))
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            if watched is not None and not await request.app[keys.AUTH].sockets.still_valid(watched):
                break
            await ws.send_str(dumps(await _handle_frame(request, agent_id, msg.data)))
    finally:
        if watched is not None:
            request.app[keys.AUTH].sockets.unregister(watched)
        service.unsubscribe(agent_id, frames)
        sender.cancel()
    return ws


async def _greeting(request: web.Request, agent_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The agent and its pending offers: from the router when this hub routes, else as the routing
    hub last wrote them (its frames then come through hub.channels.peers)."""
    service = request.app[keys.ROUTER]
    router = service.router
    if router is None and request.app[keys.PEERS].shared and service.enabled:
        found = await service.stored_hello(agent_id)
        if found is None:
            raise UnknownAgent(f"no agent {agent_id!r}")
        return found
    router = service.require()
    state = next((s for s in router.agent_states() if s.id == agent_id), None)
    if state is None:
        raise UnknownAgent(f"no agent {agent_id!r}")
    return {**state.to_dict(), "idle_since": iso_time(state.idle_since)}, await service.offer_frames(agent_id)


def _watch(request: web.Request, ws: web.WebSocketResponse) -> WatchedSocket | None:
    """Register the socket to be closed once its credentials end (None with auth off)."""
    who = principal(request)
    if who is None or who.credential_sha256 is None:
        return None

    async def close(reason: str) -> None:
        await ws.close(code=CLOSE_CREDENTIALS_ENDED, message=f"credentials {reason}: log in again".encode())
    return request.app[keys.AUTH].sockets.register(who.credential_sha256, "key" if who.kind == "key" else "token",
                                                   who.expires_at, close)


async def _send_frames(ws: web.WebSocketResponse, frames: asyncio.Queue[dict[str, Any]]) -> None:
    while not ws.closed:
        frame = await frames.get()
        try:
            await ws.send_str(dumps(frame))
        except ConnectionError:
            return


async def _handle_frame(request: web.Request, agent_id: str, data: str) -> dict[str, Any]:
    try:
        frame = Frame.model_validate_json(data)
    except ValidationError as exc:
        fields = [{"field": ".".join(str(p) for p in e["loc"]) or "frame", "message": e["msg"]}
                  for e in exc.errors(include_url=False, include_input=False)]
        return {"type": "error", "error": "invalid_frame", "fields": fields}
    args = {"task_id": frame.task_id, "agent_id": agent_id}
    if frame.op == "decline":
        args["reason"] = frame.reason
    try:
        view = await perform(request, frame.op, args)
    except (RoutingError, RouterUnavailable) as exc:
        refusal = await refusal_body(request, exc, frame.task_id)
        refusal.pop("status")
        return {"type": "error", "op": frame.op, "task_id": frame.task_id, **refusal}
    return {"type": "ack", "op": frame.op, "task_id": frame.task_id, "task": view}

