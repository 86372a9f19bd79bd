"""What the router reports: every transition as plain data, for the hub to persist and publish.

The router appends events as it decides; `Router.drain_events()` hands them over in order. The hub
writes them in the same transaction as the task rows and publishes `task.<kind>` CloudEvents.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from .model import Presence, TaskState


class TaskEventKind(enum.StrEnum):
    CREATED = "created"
    OFFERED = "offered"
    OFFER_EXPIRED = "offer_expired"  # also when an offer is withdrawn because the agent logged out
    DECLINED = "declined"
    ASSIGNED = "assigned"
    WRAP_UP = "wrap_up"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    CANCELLED = "cancelled"
    TRANSFERRED = "transferred"
    SLA_BREACHED = "sla_breached"
    ESCALATED = "escalated"
    PREFERENCE_EXPIRED = "preference_expired"  # stopped waiting for the preferred agent
    REPRIORITIZED = "reprioritized"  # a rule or a supervisor changed a live task's priority


class AgentEventKind(enum.StrEnum):
    REGISTERED = "registered"
    UPDATED = "updated"  # skills or capacity changed
    PRESENCE_CHANGED = "presence_changed"


_NO_DETAILS: Mapping[str, Any] = MappingProxyType({})


# NamedTuples, not frozen dataclasses: the router makes several per decision, and a frozen
# dataclass's __init__ (object.__setattr__ per field) cost ~2 us each, about a tenth of a decision.
class TaskEvent(NamedTuple):
    kind: TaskEventKind
    task_id: str
    at: float
    state: TaskState  # the task's state after the transition
    queue: str
    channel: str
    agent_id: str | None = None
    details: Mapping[str, Any] = _NO_DETAILS

    @property
    def event_type(self) -> str:
        """The CloudEvents type the hub publishes, e.g. `task.assigned`."""
        return f"task.{self.kind.value}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value, "task_id": self.task_id, "at": self.at, "state": self.state.value,
            "queue": self.queue, "channel": self.channel, "agent_id": self.agent_id,
            "details": dict(self.details),
        }


class AgentEvent(NamedTuple):
    kind: AgentEventKind
    agent_id: str
    at: float
    presence: Presence
    details: Mapping[str, Any] = _NO_DETAILS

    @property
    def event_type(self) -> str:
        return f"agent.{self.kind.value}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value, "agent_id": self.agent_id, "at": self.at,
            "presence": self.presence.value, "details": dict(self.details),
        }


RoutingEvent = TaskEvent | AgentEvent
