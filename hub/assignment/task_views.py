"""What a routed task looks like outside the router: `task_view`, the one shape the API, the agent
console and the `task.*` events all carry, and the small conversions it and the console's frames
share (float seconds to RFC 3339 time, sets to lists).

Its own module because three places need it (the flush writes it into events, the agent consoles
put it in frames, the API returns it) and none of them should import another only for it.
"""

from __future__ import annotations

from typing import Any

from routing import Task, TaskState, as_datetime
from schemas.timestamps import rfc3339


def iso_time(seconds: float | None) -> str | None:
    """A router clock reading as RFC 3339 UTC ending in `Z`, the format of every JSON answer."""
    return rfc3339(as_datetime(seconds)) if seconds is not None else None


def task_view(task: Task, state: TaskState | None = None) -> dict[str, Any]:
    """A task as the API and the agent console see it."""
    return {
        "id": task.id, "interaction_id": task.interaction_id, "profile_id": task.profile_id,
        "channel": task.channel, "queue": task.queue, "priority": task.priority,
        "state": (state or task.state).value, "agent_id": task.agent_id,
        "preferred_agent": task.preferred_agent, "required_skills": dict(task.required_skills),
        "enqueued_at": iso_time(task.enqueued_at), "answered_at": iso_time(task.answered_at),
        "ended_at": iso_time(task.ended_at), "disposition": task.disposition, "note": task.note,
        "sla_breached": task.sla_breached,
    }


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    return {k: (sorted(v) if isinstance(v, set) else v) for k, v in details.items()}
