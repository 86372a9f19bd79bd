"""What an `agent` user may see and do (DESIGN section 9: "Agents see only the tasks and profiles
routed to them"): act only as its own agent_id, read only the profiles (and their interactions) of
the tasks offered to or held by it. Supervisors, admins and API keys are not confined (hub.access.auth)."""

from __future__ import annotations

import uuid

from aiohttp import web
from sqlalchemy import select

from hub import keys
from hub.access.auth import Scope, forbidden, restricted_agent
from hub.storage.routing_models import tasks
from routing import TaskState, UnknownTask

_HOLDING = (TaskState.OFFERED, TaskState.ASSIGNED, TaskState.WRAP_UP)


def not_self(request: web.Request, agent_id: str | None) -> web.Response | None:
    """403 when an agent user names another agent (None: it may go on)."""
    me = restricted_agent(request)
    if me is None or agent_id == me:
        return None
    return forbidden(Scope.ROUTING, f"agent {me!r} may act only as itself, not as {agent_id!r} "
                                    f"(acting for others needs the scope 'routing')")


async def task_holder(request: web.Request, task_id: str) -> str | None:
    """The agent a live task is offered to or held by (None: nobody, or no such live task)."""
    service = request.app[keys.ROUTER]
    if service.router is not None:
        try:
            return service.router.task(task_id).agent_id
        except UnknownTask:
            return None
    try:
        key = uuid.UUID(task_id)
    except ValueError:
        return None
    async with request.app[keys.ENGINE].connect() as conn:
        return (await conn.execute(select(tasks.c.agent_id).where(tasks.c.id == key))).scalar()


async def agent_profiles(request: web.Request, agent_id: str) -> set[str]:
    """Profile ids of the tasks offered to or held by `agent_id`."""
    service = request.app[keys.ROUTER]
    if service.router is not None:  # the router decides in memory; its table catches up at the next flush
        return {t.profile_id for t in service.router.tasks()
                if t.agent_id == agent_id and t.state in _HOLDING and t.profile_id}
    async with request.app[keys.ENGINE].connect() as conn:
        rows = await conn.execute(select(tasks.c.profile_id).where(tasks.c.agent_id == agent_id,
                                                                    tasks.c.state.in_([s.value for s in _HOLDING])))
        return {str(pid) for (pid,) in rows if pid is not None}


async def profile_refusal(request: web.Request, profile_id: uuid.UUID | str | None) -> web.Response | None:
    """403 when an agent user asks for a profile none of its tasks is about."""
    me = restricted_agent(request)
    if me is None:
        return None
    if profile_id is not None and str(profile_id) in await agent_profiles(request, me):
        return None
    return forbidden(Scope.PROFILES_READ, f"agent {me!r} may read only the profiles of its own tasks")
