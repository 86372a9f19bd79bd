"""The agent and supervisor routing API (issue 6; names in DESIGN section 11).

`GET /v1/queues`, `GET /v1/agents`, `POST /v1/agents/{id}/presence`, `GET /v1/tasks` (live tasks in
line order), `POST /v1/tasks/{id}/accept|decline|transfer|wrapup|complete|abandon|cancel`, and the
agent console websocket `GET /v1/agents/ws?agent_id=...` (offers and task updates pushed;
`accept`/`decline` frames in; the agent goes offline `offline_grace_s` after its last one closes;
the socket itself is hub.api.agent_socket).

With several hubs on one database the router is active on one of them; an operation reaching
another is run there (hub.channels.router_link) and a console connected to another gets its frames
through hub.channels.peers.

With auth enabled (hub.access.auth) an `agent` user acts only as its own agent_id (hub.api.confine):
naming another agent, or wrapping up a task it does not hold, is refused with 403.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hub import keys
from hub.access.auth import Scope, requires, restricted_agent
from hub.api import openapi
from hub.api.confine import not_self, task_holder
from hub.api.paging import listing, page_of, page_request
from hub.assignment import store as store
from hub.assignment.router_service import RouterUnavailable, task_view
from hub.assignment.task_views import iso_time
from hub.channels import router_link
from hub.http_errors import error_response, json_response
from routing import (
    InvalidTransition,
    Presence,
    RoutingError,
    Task,
    TaskState,
    UnknownAgent,
    UnknownQueue,
    UnknownTask,
)

log = logging.getLogger("omnihub.api.routing")
_ACTIVE = {"type": "boolean", "description": "false while this hub is not the active router (the list is empty)"}
routes = web.RouteTableDef()
T = TypeVar("T")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentBody(_Body):
    agent_id: str = Field(min_length=1, max_length=100)


class DeclineBody(AgentBody):
    reason: str | None = Field(None, max_length=200)


class TransferBody(_Body):
    queue: str | None = Field(None, min_length=1, max_length=100)
    agent_id: str | None = Field(None, min_length=1, max_length=100)


class WrapupBody(_Body):
    disposition: str | None = Field(None, max_length=100)
    note: str | None = Field(None, max_length=4000)


class ReasonBody(_Body):
    reason: str | None = Field(None, max_length=200)


class PresenceBody(_Body):
    presence: Presence


async def _body(request: web.Request, model: type[_Body]) -> Any:
    raw = await request.read()
    return model.model_validate_json(raw or b"{}")


async def refusal_body(request: web.Request, exc: Exception, task_id: str | None = None) -> dict[str, Any]:
    """The JSON error (with its HTTP `status`) for a refused operation, shared by HTTP and the websocket."""
    service = request.app[keys.ROUTER]
    match exc:
        case RouterUnavailable():
            return {"status": 503, "error": "routing_unavailable", "message": str(exc)}
        case UnknownTask() if task_id is not None:
            # Finished tasks leave the router: the table still knows their state.
            state = await service.stored_state(task_id)
            if state is None:
                return {"status": 404, "error": "task_not_found", "message": f"no task {task_id!r}"}
            return {"status": 409, "error": "invalid_transition", "state": state,
                    "message": f"task {task_id!r} is {state}"}
        case UnknownAgent() | UnknownQueue():
            return {"status": 404, "error": "not_found", "message": str(exc)}
        case InvalidTransition() if task_id is not None:
            state = service.router.task(task_id).state.value if service.router else None
            return {"status": 409, "error": "invalid_transition", "state": state, "message": str(exc)}
        case _:
            return {"status": 409, "error": "refused", "message": str(exc)}


async def _task_op(request: web.Request, op: str, args: dict[str, Any], *, held: bool = False) -> web.Response:
    """Run `op` on the task, on whichever hub routes (hub.channels.router_link); `held`: an agent
    user may do it only to a task offered to or held by it."""
    task_id = request.match_info["id"]
    if held and restricted_agent(request) is not None:
        if (refusal := not_self(request, await task_holder(request, task_id))) is not None:
            return refusal
    try:
        view = await perform(request, op, {"task_id": task_id, **args})
    except (RoutingError, RouterUnavailable) as exc:
        body = await refusal_body(request, exc, task_id)
        return json_response(body, status=body.pop("status"))
    return json_response(view)


async def perform(request: web.Request, op: str, args: dict[str, Any]) -> dict[str, Any]:
    return await router_link.perform(request.app[keys.ROUTER], request.app[keys.PEERS], op, args)


@routes.post("/v1/tasks/{id}/accept")
@requires(Scope.TASKS)
@openapi.body(AgentBody)
async def accept(request: web.Request) -> web.Response:
    body = await _body(request, AgentBody)
    if (refusal := not_self(request, body.agent_id)) is not None:
        return refusal
    return await _task_op(request, "accept", {"agent_id": body.agent_id})


@routes.post("/v1/tasks/{id}/decline")
@requires(Scope.TASKS)
@openapi.body(DeclineBody)
async def decline(request: web.Request) -> web.Response:
    body = await _body(request, DeclineBody)
    if (refusal := not_self(request, body.agent_id)) is not None:
        return refusal
    return await _task_op(request, "decline", {"agent_id": body.agent_id, "reason": body.reason})


@routes.post("/v1/tasks/{id}/transfer")
@requires(Scope.ROUTING)
@openapi.body(TransferBody)
async def transfer(request: web.Request) -> web.Response:
    body = await _body(request, TransferBody)
    if body.queue is None and body.agent_id is None:
        return error_response(422, "validation_failed", "a transfer needs a queue or an agent_id",
                              [{"field": "queue", "message": "queue or agent_id is required"}])
    return await _task_op(request, "transfer", {"queue": body.queue, "agent_id": body.agent_id})


@routes.post("/v1/tasks/{id}/wrapup")
@requires(Scope.TASKS)
@openapi.body(WrapupBody)
async def wrapup(request: web.Request) -> web.Response:
    body = await _body(request, WrapupBody)
    return await _task_op(request, "wrapup", {"disposition": body.disposition, "note": body.note}, held=True)


@routes.post("/v1/tasks/{id}/complete")
@requires(Scope.TASKS)
@openapi.body(WrapupBody)
async def complete(request: web.Request) -> web.Response:
    body = await _body(request, WrapupBody)
    return await _task_op(request, "complete", {"disposition": body.disposition, "note": body.note}, held=True)


@routes.post("/v1/tasks/{id}/abandon")
@requires(Scope.ROUTING)
@openapi.body(ReasonBody)
async def abandon(request: web.Request) -> web.Response:
    """The customer left before an agent accepted (a call hung up, a chat closed): 409 once assigned,
    when the end of the conversation is a wrap-up instead."""
    await _body(request, ReasonBody)
    return await _task_op(request, "abandon", {})


@routes.post("/v1/tasks/{id}/cancel")
@requires(Scope.ROUTING)
@openapi.body(ReasonBody)
async def cancel(request: web.Request) -> web.Response:
    """Withdraw a live task in any state (a duplicate, a spam message); its agent's capacity comes back."""
    body = await _body(request, ReasonBody)
    return await _task_op(request, "cancel", {"reason": body.reason})


@routes.get("/v1/tasks")
@requires(Scope.TASKS)
@openapi.lists("Task", active=_ACTIVE)
async def list_tasks(request: web.Request) -> web.Response:
    """Live tasks in waiting-line order (priority, then time waited), optionally of one queue, state
    or agent: what a supervisor watches, how a restart is seen to keep the order, and what an agent
    console that (re)connects reloads its held tasks from. Paged (`limit`, `cursor`)."""
    page = page_request(request, "tasks", _task_key_of)
    service = request.app[keys.ROUTER]
    # The router decides in memory (timers, presence changes) and writes at its next flush; flushed
    # first, a listing shows no offer or assignment that a crash could still take back.
    await service.flush()
    router = service.router
    if router is None:
        return json_response(listing([], None, active=False))
    queue, state, agent = request.query.get("queue"), request.query.get("state"), request.query.get("agent_id")
    if (me := restricted_agent(request)) is not None:  # an agent user lists its own tasks only
        if agent is not None and (refusal := not_self(request, agent)) is not None:
            return refusal
        agent = me
    if state is not None and state not in {s.value for s in TaskState}:
        return error_response(422, "validation_failed", f"unknown state {state!r}",
                              [{"field": "state", "message": f"one of {', '.join(TaskState)}"}])
    live = (t for t in router.tasks() if (queue is None or t.queue == queue)
            and (state is None or t.state == state) and (agent is None or t.agent_id == agent))
    shown, after = page_of(live, _task_key, page, "tasks")
    return json_response(listing([task_view(t) for t in shown], after, active=True))


def _task_key(task: Task) -> tuple[int, float, int, str]:
    return (*task.order(), task.id)


def _task_key_of(key: list[Any]) -> tuple[int, float, int, str]:
    priority, enqueued, seq, task_id = key
    if not (isinstance(priority, int) and isinstance(enqueued, (int, float)) and isinstance(seq, int)
            and isinstance(task_id, str)):
        raise TypeError("not a task key")
    return (priority, float(enqueued), seq, task_id)


def _name_key_of(key: list[Any]) -> tuple[str]:
    (name,) = key
    if not isinstance(name, str):
        raise TypeError("not a name")
    return (name,)


@routes.get("/v1/tasks/{id}")
@requires(Scope.TASKS)
async def get_task(request: web.Request) -> web.Response:
    """One task, live or finished, as stored: its state, agent, times, disposition and note."""
    service = request.app[keys.ROUTER]
    await service.flush()  # durable state only, as in list_tasks
    try:
        task_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        return error_response(404, "not_found", "no such task", [{"field": "id", "message": "not a UUID"}])
    async with request.app[keys.ENGINE].connect() as conn:
        task = await conn.run_sync(store.load_task, task_id)
    if task is None:
        return error_response(404, "not_found", "no such task")
    if (refusal := not_self(request, task.agent_id)) is not None:
        return refusal
    return json_response(task_view(task))


@routes.get("/v1/queues")
@requires(Scope.ROUTING)
@openapi.lists("Queue", active=_ACTIVE)
async def list_queues(request: web.Request) -> web.Response:
    """Each queue's config and live stats, by name. Paged (`limit`, `cursor`)."""
    page = page_request(request, "queues", _name_key_of)
    service = request.app[keys.ROUTER]
    await service.flush()  # durable state only, as in list_tasks
    router = service.router
    if router is None:
        return json_response(listing([], None, active=False))
    stats = {s.queue: s.to_dict() for s in router.queue_stats()}
    shown, after = page_of(router.queues(), lambda q: (q.name,), page, "queues")
    return json_response(listing([{"name": q.name, "config": q.model_dump(mode="json"), "stats": stats[q.name]}
                                  for q in shown], after, active=True))


@routes.get("/v1/agents")
@requires(Scope.ROUTING)
@openapi.lists("Agent", active=_ACTIVE)
async def list_agents(request: web.Request) -> web.Response:
    """Each agent's presence, idle since, capacity used and held tasks, by id. Paged (`limit`, `cursor`)."""
    page = page_request(request, "agents", _name_key_of)
    service = request.app[keys.ROUTER]
    await service.flush()  # durable state only, as in list_tasks
    router = service.router
    if router is None:
        return json_response(listing([], None, active=False))
    shown, after = page_of(router.agent_states(), lambda a: (a.id,), page, "agents")
    out = [{**state.to_dict(), "idle_since": iso_time(state.idle_since),
            "skills": dict(router.agent(state.id).skills), "display_name": service.display_names.get(state.id)}
           for state in shown]
    return json_response(listing(out, after, active=True))


@routes.post("/v1/agents/{id}/presence")
@requires(Scope.TASKS)
@openapi.body(PresenceBody)
async def set_presence(request: web.Request) -> web.Response:
    body = await _body(request, PresenceBody)
    agent_id = request.match_info["id"]
    if (refusal := not_self(request, agent_id)) is not None:
        return refusal
    try:
        view = await perform(request, "presence", {"agent_id": agent_id, "presence": body.presence.value})
    except (RoutingError, RouterUnavailable) as exc:
        refusal = await refusal_body(request, exc)
        return json_response(refusal, status=refusal.pop("status"))
    return json_response(view)
