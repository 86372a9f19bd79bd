"""Routing tables (issue 6): queues, agents, tasks and the append-only task transition log.

Same `metadata` as hub.storage.models, so Alembic and the test fixtures see one schema. JSON is kept
as Text, like profiles.attributes, so both backends store it the same way.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Table, Text, Uuid, text

from hub.storage.models import AutoBigInt, UTCDateTime, metadata

queues = Table(
    "queues",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("config", Text, nullable=False),  # routing.Queue as JSON
    Column("updated_at", UTCDateTime, nullable=False),
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("display_name", String(200)),
    # An agent may be a salesperson who owns customer relationships (profile owner) and takes no queue work.
    Column("role", String(32), nullable=False, server_default=text("'agent'")),
    Column("skills", Text, nullable=False, server_default=text("'{}'")),
    Column("capacity", Text, nullable=False, server_default=text("'{}'")),
    Column("presence", String(16), nullable=False, server_default=text("'offline'")),
    Column("idle_since", UTCDateTime),
    Column("missed_in_row", Integer, nullable=False, server_default=text("0")),
    Column("updated_at", UTCDateTime, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("interaction_id", Uuid, ForeignKey("interactions.id")),
    Column("profile_id", Uuid),
    Column("channel", String(32), nullable=False),
    Column("queue", String(100), nullable=False),
    Column("priority", Integer, nullable=False, server_default=text("0")),
    Column("required_skills", Text, nullable=False, server_default=text("'{}'")),
    Column("preferred_agent", String(100)),
    # 'new': committed by ingest, not yet taken by the router; then the routing.TaskState values.
    Column("state", String(16), nullable=False),
    Column("agent_id", String(100)),
    Column("enqueued_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("answered_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("disposition", String(100)),
    Column("note", Text),
    Column("sla_breached", Boolean, nullable=False, server_default=text("false")),
    # The rest of routing.Task's persisted fields (escalation level, skill overrides, declined_by,
    # preference deadline, queue entry, offer and wrap-up times) as JSON: what a restart needs.
    Column("router_state", Text, nullable=False, server_default=text("'{}'")),
    Column("version", Integer, nullable=False, server_default=text("1")),
    # The interaction's conversation: a later message in it joins this task while it is open.
    Column("conversation_key", String(512)),
    Index("ix_tasks_state", "state"),
    Index("ix_tasks_conversation_key", "conversation_key"),
    Index("ix_tasks_interaction_id", "interaction_id"),
    Index("ix_tasks_agent_id", "agent_id"),
)

task_events = Table(
    "task_events",
    metadata,
    Column("seq", AutoBigInt, primary_key=True, autoincrement=True),
    Column("task_id", Uuid, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("queue", String(100), nullable=False),
    Column("agent_id", String(100)),
    Column("at", UTCDateTime, nullable=False),
    Column("details", Text, nullable=False, server_default=text("'{}'")),
    Index("ix_task_events_task_id", "task_id", "seq"),
)

__all__ = ["agents", "queues", "task_events", "tasks"]
