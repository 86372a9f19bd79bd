"""The ingest step that turns a rules `route` action into a routing task (issue 6, DESIGN section 1).

It runs inside the ingest unit of work, after the rules step: the task row and its `task.created`
event are written in the interaction's own transaction, so a 2xx means the task is durable. The
task is committed in state `new`; the live router (hub.assignment.router_service) picks it up after the commit.

Only the kinds `routing.kinds` lists (messages and calls by default) become tasks: a POS sale, an
imported record or a bounce is history for the timeline, not work for an agent. A rule's `no_route`
keeps any one interaction from routing, over every `route` and the default queue.

One conversation, one task: a message in a conversation that already has an open task (new,
waiting, offered or assigned) joins it rather than making another, so a customer who sends five
lines in a row is one offer, not five. That check is the one read this step makes, in its write.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from hub.broker.events import event_row
from hub.ids import new_id
from hub.ingest.batch_write import IngestContext
from hub.settings import RoutingSettings
from hub.storage import batch as store
from hub.storage.models import outbox
from hub.storage.routing_models import tasks
from rules.actions import NoRoute, Route
from schemas import Direction, EventType
from schemas.timestamps import rfc3339

log = logging.getLogger("omnihub.routing")

NEW = "new"  # committed, not yet taken by the router


def profile_field(profile: Mapping[str, Any] | None, name: str) -> Any:
    """A profile field, from its column when the profile issue adds one, else from its attributes."""
    if not profile:
        return None
    value = profile.get(name)
    if value is None:
        value = (profile.get("attributes") or {}).get(name)
    return value


class RoutingStep:
    """Callable IngestStep: `pipeline.steps.append(RoutingStep(settings.routing))`."""

    def __init__(self, config: RoutingSettings) -> None:
        self._config = config
        self._queues = frozenset(q.name for q in config.queues)
        self._kinds = config.kinds

    def __call__(self, ctx: IngestContext) -> None:
        item = ctx.interaction
        if not self._queues or item.direction is not Direction.INBOUND or item.kind not in self._kinds:
            return
        if any(isinstance(a, NoRoute) for a in ctx.actions):
            return
        route = next((a for a in ctx.actions if isinstance(a, Route)), None)
        queue = route.queue if route is not None else self._config.default_queue
        if queue is None:
            return
        if queue not in self._queues:
            # A task in a queue no router serves would wait forever; the rules are what is wrong.
            log.warning("route to unknown queue", extra={"queue": queue, "interaction_id": str(item.id)})
            queue = self._config.default_queue
            if queue is None:
                return
        priority = route.priority if route is not None and route.priority is not None else item.priority
        tier = profile_field(ctx.profile, "tier")
        priority += self._config.tier_priority.get(str(tier), 0) if tier is not None else 0
        owner_first = (route is not None and route.owner_first) or self._config.sticky_owner
        owner = profile_field(ctx.profile, "owner") if owner_first else None
        row = {
            "id": new_id(), "interaction_id": item.id, "profile_id": item.profile_id, "channel": item.channel,
            "queue": queue, "priority": priority,
            "required_skills": json.dumps({s: 1 for s in route.skills} if route is not None else {}),
            "preferred_agent": str(owner) if owner else None, "state": NEW, "agent_id": None,
            "enqueued_at": ctx.now, "created_at": ctx.now, "updated_at": ctx.now,
            "sla_breached": False, "router_state": "{}", "version": 1, "conversation_key": item.conversation_key,
        }
        ctx.writes.append(functools.partial(_create_unless_open, row=row))


def task_created_data(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "task_id": str(row["id"]), "interaction_id": str(row["interaction_id"]),
        "profile_id": str(row["profile_id"]) if row["profile_id"] else None, "channel": row["channel"],
        "queue": row["queue"], "priority": row["priority"],
        "required_skills": json.loads(row["required_skills"]), "preferred_agent": row["preferred_agent"],
        "state": "waiting", "enqueued_at": rfc3339(row["enqueued_at"]),
    }


# Open: the task still has someone to answer the conversation (wrap-up is the agent finishing).
OPEN_STATES = (NEW, "waiting", "offered", "assigned")


def _create_unless_open(conn: Connection, *, row: dict[str, Any]) -> None:
    key = row["conversation_key"]
    if key is not None:
        t = tasks.c
        joined = conn.execute(select(t.id).where(t.conversation_key == key, t.state.in_(OPEN_STATES))
                              .limit(1)).scalar()
        if joined is not None:
            log.info("message joins the conversation's open task",
                     extra={"task_id": str(joined), "interaction_id": str(row["interaction_id"])})
            return
    store.insert_rows(conn, tasks, [row])
    store.insert_rows(conn, outbox, [event_row(EventType.TASK_CREATED, now=row["created_at"], channel=row["channel"],
                                               subject=row["profile_id"], data=task_created_data(row))])
