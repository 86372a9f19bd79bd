"""The router's statements: synchronous Core on the caller's connection (run through run_sync).

Rows <-> routing.Task: the router counts in float seconds (SystemClock), the tables in UTC
datetimes; the fields no query needs travel in `tasks.router_state` as JSON.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from hub.storage.models import interactions, outbox, profiles
from hub.storage.routing_models import agents, queues, task_events, tasks
from routing import Agent, Queue, Task, TaskEvent, TaskState, as_datetime

NEW = "new"
LIVE = tuple(s.value for s in (TaskState.WAITING, TaskState.OFFERED, TaskState.ASSIGNED, TaskState.WRAP_UP))
_ROUTER_STATE = ("preference_timeout_s", "preferred_until", "queue_entered_at", "offered_at", "wrapup_at",
                 "escalation_level", "skill_overrides", "declined_by")


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _dt(value: float | None) -> datetime | None:
    return as_datetime(value) if value is not None else None


def task_from_row(row: Mapping[str, Any]) -> Task:
    extra = json.loads(row["router_state"] or "{}")
    state = TaskState.WAITING if row["state"] == NEW else TaskState(row["state"])
    return Task.from_dict({
        "id": str(row["id"]), "queue": row["queue"], "channel": row["channel"],
        "interaction_id": str(row["interaction_id"]) if row["interaction_id"] else None,
        "profile_id": str(row["profile_id"]) if row["profile_id"] else None,
        "priority": row["priority"], "required_skills": json.loads(row["required_skills"] or "{}"),
        "preferred_agent": row["preferred_agent"], "state": state, "agent_id": row["agent_id"],
        "created_at": _ts(row["created_at"]), "enqueued_at": _ts(row["enqueued_at"]),
        "answered_at": _ts(row["answered_at"]), "ended_at": _ts(row["ended_at"]),
        "disposition": row["disposition"], "note": row["note"], "sla_breached": bool(row["sla_breached"]),
        **{k: v for k, v in extra.items() if k in _ROUTER_STATE},
    })


def task_params(task: Task, now: datetime) -> dict[str, Any]:
    """The task's row as of now, for `persist`: taken when the events are drained, because the
    router goes on changing the Task object while the write awaits the database."""
    data = task.to_dict()
    return {
        "b_id": uuid.UUID(task.id), "queue": task.queue, "priority": task.priority, "state": task.state.value,
        "agent_id": task.agent_id, "preferred_agent": task.preferred_agent, "enqueued_at": _dt(task.enqueued_at),
        "answered_at": _dt(task.answered_at), "ended_at": _dt(task.ended_at), "disposition": task.disposition,
        "note": task.note, "sla_breached": task.sla_breached, "updated_at": now,
        "router_state": json.dumps({k: data[k] for k in _ROUTER_STATE}, separators=(",", ":")),
    }


def task_event_row(ev: TaskEvent) -> dict[str, Any]:
    return {"task_id": uuid.UUID(ev.task_id), "kind": ev.kind.value, "state": ev.state.value, "queue": ev.queue,
            "agent_id": ev.agent_id, "at": as_datetime(ev.at),
            "details": json.dumps(ev.details, separators=(",", ":"), default=str)}


def agent_params(agent: Agent, now: datetime) -> dict[str, Any]:
    return {"b_id": agent.id, "presence": agent.presence.value, "idle_since": _dt(agent.idle_since),
            "missed_in_row": agent.missed_in_row, "updated_at": now}


def sync_config(conn: Connection, queue_list: Sequence[Queue], agent_list: Sequence[Any], now: datetime) -> None:
    """Configured queues and agents into their tables; an agent's presence and idleness are kept."""
    known_q = set(conn.execute(select(queues.c.name)).scalars())
    for q in queue_list:
        values = {"config": q.model_dump_json(), "updated_at": now}
        if q.name in known_q:
            conn.execute(update(queues).where(queues.c.name == q.name).values(values))
        else:
            conn.execute(insert(queues).values(name=q.name, **values))
    known_a = set(conn.execute(select(agents.c.id)).scalars())
    for a in agent_list:
        values = {"display_name": a.display_name, "skills": json.dumps(a.skills),
                  "capacity": a.capacity.model_dump_json(), "updated_at": now}
        if a.id in known_a:
            conn.execute(update(agents).where(agents.c.id == a.id).values(values))
        else:
            conn.execute(insert(agents).values(id=a.id, presence="offline", missed_in_row=0, **values))


def load_state(conn: Connection) -> tuple[list[Queue], list[dict[str, Any]], list[Task]]:
    """Queues, agents (as routing.Agent dicts plus display_name) and live tasks, for Router.restore."""
    qs = [Queue.model_validate_json(c) for c in conn.execute(select(queues.c.config).order_by(queues.c.name)).scalars()]
    ags = [
        {"id": r.id, "display_name": r.display_name, "skills": json.loads(r.skills),
         "capacity": json.loads(r.capacity), "presence": r.presence, "idle_since": _ts(r.idle_since),
         "missed_in_row": r.missed_in_row}
        for r in conn.execute(select(agents))
    ]
    live = [task_from_row(r) for r in conn.execute(select(tasks).where(tasks.c.state.in_(LIVE))).mappings()]
    return qs, ags, live


def load_window(conn: Connection, since: datetime) -> dict[str, tuple[list[tuple[float, float]], list[float]]]:
    """Per queue, answers (answered at, waited s) and abandons (at) since `since`, to seed the
    queue statistics after a restart: as far as the tasks table allows. A task is counted in the
    queue it is in now, and one transferred after it was answered restarted its wait (enqueued_at),
    so its first wait is unknown and it is left out."""
    out: dict[str, tuple[list[tuple[float, float]], list[float]]] = {}
    rows = conn.execute(select(tasks.c.queue, tasks.c.state, tasks.c.enqueued_at, tasks.c.answered_at,
                               tasks.c.ended_at)
                        .where((tasks.c.answered_at >= since)
                               | ((tasks.c.state == TaskState.ABANDONED.value) & (tasks.c.ended_at >= since))))
    for queue, state, enqueued, answered, ended in rows:
        answers, abandons = out.setdefault(queue, ([], []))
        if answered is not None and answered >= since and enqueued <= answered:
            answers.append((answered.timestamp(), (answered - enqueued).total_seconds()))
        if state == TaskState.ABANDONED.value and ended is not None:
            abandons.append(ended.timestamp())
    return out


def fetch_new(conn: Connection, limit: int = 500) -> list[Task]:
    rows = conn.execute(select(tasks).where(tasks.c.state == NEW).order_by(tasks.c.enqueued_at).limit(limit))
    return [task_from_row(r) for r in rows.mappings()]


def task_state(conn: Connection, task_id: uuid.UUID) -> str | None:
    return conn.execute(select(tasks.c.state).where(tasks.c.id == task_id)).scalar_one_or_none()


def load_task(conn: Connection, task_id: uuid.UUID) -> Task | None:
    """One task as stored, live or finished."""
    row = conn.execute(select(tasks).where(tasks.c.id == task_id)).mappings().first()
    return None if row is None else task_from_row(row)


def interaction_summaries(conn: Connection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """What an offer shows the agent before accepting: channel, sender, subject, the first words."""
    wanted = [uuid.UUID(i) for i in set(ids)]
    found: dict[str, dict[str, Any]] = {}
    if not wanted:
        return found
    # The profile's name too: an SMS or a call carries none, and the agent should see who it is.
    query = (select(interactions.c.id, interactions.c.document, profiles.c.display_name)
             .outerjoin(profiles, profiles.c.id == interactions.c.profile_id).where(interactions.c.id.in_(wanted)))
    for iid, document, customer in conn.execute(query):
        doc = json.loads(document)
        sender = doc.get("sender") or {}
        text = ((doc.get("content") or {}).get("text") or "")
        found[str(iid)] = {
            "id": str(iid), "channel": doc.get("channel"), "kind": doc.get("kind"),
            "subject": doc.get("subject"), "sender": sender.get("display_name"), "text": text[:280],
            "occurred_at": doc.get("occurred_at"), "tags": doc.get("tags") or [], "customer": customer,
        }
    return found


def persist(conn: Connection, *, task_list: Sequence[dict[str, Any]], event_rows: Sequence[dict[str, Any]],
            outbox_rows: Sequence[dict[str, Any]], agent_rows: Sequence[dict[str, Any]], now: datetime) -> None:
    """One batch of router decisions: task rows, their transition log and the agents they touched."""
    if task_list:
        stmt = update(tasks).where(tasks.c.id == bindparam("b_id")).values(version=tasks.c.version + 1)
        conn.execute(stmt, list(task_list))
    if event_rows:
        conn.execute(insert(task_events), list(event_rows))
    if outbox_rows:
        conn.execute(insert(outbox), list(outbox_rows))
    if agent_rows:
        stmt = update(agents).where(agents.c.id == bindparam("b_id"))
        conn.execute(stmt, list(agent_rows))
