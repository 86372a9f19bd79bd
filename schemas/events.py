"""The event envelope (CloudEvents 1.0, JSON format) and the event catalogue (DESIGN section 5)."""

from __future__ import annotations

import enum
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .timestamps import Timestamp

EVENT_SOURCE = "omnihub"


class EventType(enum.StrEnum):
    INTERACTION_RECEIVED = "interaction.received"
    INTERACTION_SENT = "interaction.sent"
    INTERACTION_UPDATED = "interaction.updated"  # a call's later reports (status, duration, outcome)
    PROFILE_CREATED = "profile.created"
    PROFILE_UPDATED = "profile.updated"
    PROFILE_MERGED = "profile.merged"
    PROFILE_UNMERGED = "profile.unmerged"
    PROFILE_ERASED = "profile.erased"
    TASK_CREATED = "task.created"
    TASK_ASSIGNED = "task.assigned"
    TASK_COMPLETED = "task.completed"
    TASK_SLA_BREACHED = "task.sla_breached"
    TASK_ABANDONED = "task.abandoned"
    MESSAGE_DELIVERED = "message.delivered"
    MESSAGE_FAILED = "message.failed"
    CAMPAIGN_COMPLETED = "campaign.completed"
    # back-office (issue 7): the outcome of a command received on omnihub.commands
    COMMAND_COMPLETED = "command.completed"
    COMMAND_REJECTED = "command.rejected"


def routing_key(event_type: str, channel: str | None = None) -> str:
    """The topic routing key: the type, plus the channel where there is one."""
    return f"{event_type}.{channel}" if channel else event_type


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope; `subject` is the profile id when the event concerns a customer."""

    model_config = ConfigDict(extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    type: str = Field(pattern=r"^[a-z_]+(\.[a-z_]+)+$")
    source: str = EVENT_SOURCE
    time: Timestamp
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any] = Field(default_factory=dict)
