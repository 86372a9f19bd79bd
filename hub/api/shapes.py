"""JSON Schemas of what the list routes answer, for the OpenAPI document (hub.api.openapi).

The items of a list are built by hand (task_view, the router's queue and agent states, stored rows),
so their shapes are written here beside the one place that publishes them; tests/hub/api checks
live answers against them, so they cannot drift from what the hub sends.
"""

from __future__ import annotations

from typing import Any

TIME = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC, ending in Z"}
_TEXT = {"type": "string"}
_COUNT = {"type": "integer"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Any], *, extra: bool = False) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties,
            "additionalProperties": extra}


TASK = _object({
    "id": _TEXT, "interaction_id": _nullable(_TEXT), "profile_id": _nullable(_TEXT), "channel": _TEXT,
    "queue": _TEXT, "priority": _COUNT,
    "state": {"enum": ["waiting", "offered", "assigned", "wrap_up", "completed", "abandoned", "cancelled"]},
    "agent_id": _nullable(_TEXT), "preferred_agent": _nullable(_TEXT),
    "required_skills": {"type": "object", "additionalProperties": _COUNT},
    "enqueued_at": _nullable(TIME), "answered_at": _nullable(TIME), "ended_at": _nullable(TIME),
    "disposition": _nullable(_TEXT), "note": _nullable(_TEXT), "sla_breached": {"type": "boolean"},
})

QUEUE = _object({
    "name": _TEXT,
    "config": {"type": "object", "description": "the queue as configured (routing.queues)"},
    "stats": {"type": "object", "description": "waiting, offered, longest_wait_s, service_level, "
                                                "abandon_rate, asa_s, agents over the last window"},
})

AGENT = _object({
    "id": _TEXT, "display_name": _nullable(_TEXT), "presence": {"enum": ["offline", "available", "away", "wrap_up"]},
    "idle_since": _nullable(TIME), "missed_in_row": _COUNT, "used": _COUNT, "budget": _COUNT,
    "tasks": {"type": "object", "additionalProperties": _TEXT, "description": "task id -> state"},
    "skills": {"type": "object", "additionalProperties": _COUNT},
})

MERGE_SUGGESTION = _object({
    "id": _TEXT, "profile_id": _TEXT, "other_id": _TEXT, "reason": _TEXT,
    "identifiers": {"type": "array", "items": _TEXT}, "interaction_id": _nullable(_TEXT),
    "state": {"enum": ["open", "merged", "dismissed"]}, "created_at": TIME, "resolved_at": _nullable(TIME),
})

SECURITY_EVENT = _object({
    "id": _COUNT, "at": TIME, "kind": _TEXT, "username": _nullable(_TEXT), "key_name": _nullable(_TEXT),
    "client": _nullable(_TEXT), "actor": _nullable(_TEXT),
})

ITEMS: dict[str, dict[str, Any]] = {"Task": TASK, "Queue": QUEUE, "Agent": AGENT, "MergeSuggestion": MERGE_SUGGESTION,
                                    "SecurityEvent": SECURITY_EVENT}


def page(items: dict[str, Any], summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one list shape: `items`, `next` (the cursor of the next page, null on the last) and any
    summary fields the route adds."""
    properties = {**(summary or {}), "items": {"type": "array", "items": items},
                  "next": {"oneOf": [{"type": "string"}, {"type": "null"}],
                           "description": "pass back as ?cursor= for the next page; null on the last page"}}
    return {"type": "object", "required": ["items", "next"], "properties": properties, "additionalProperties": False}
