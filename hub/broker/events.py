"""Outbox rows: CloudEvents serialized once, at the moment of the change (DESIGN section 5)."""

from __future__ import annotations

import functools
import json
import uuid
from datetime import datetime
from typing import Any

from hub.ids import new_id
from schemas import EVENT_SOURCE, routing_key

# json.dumps with any non-default argument builds a new encoder on every call.
_DATA_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


@functools.lru_cache(maxsize=256)
def _head(event_type: str) -> str:
    return '{"specversion":"1.0","id":"%%s","type":%s,"source":%s,' % (json.dumps(event_type), json.dumps(EVENT_SOURCE))


@functools.lru_cache(maxsize=256)
def _routing_key(event_type: str, channel: str | None) -> str:
    return routing_key(event_type, channel)


@functools.lru_cache(maxsize=8)
def _time(now: datetime) -> str:
    # One unit of work stamps all its events with the same `now`: format it once.
    return now.isoformat()


def event_row(
    event_type: str,
    *,
    now: datetime,
    data_json: str | None = None,
    data: dict[str, Any] | None = None,
    channel: str | None = None,
    subject: uuid.UUID | str | None = None,
) -> dict[str, Any]:
    """An outbox row whose body is the CloudEvents JSON envelope.

    `data_json` lets the caller pass an already-serialized payload (the interaction document),
    spliced in as-is rather than parsed and dumped again.
    """
    event_id = new_id()
    if data_json is None:
        data_json = _DATA_ENCODER.encode(data or {})
    subject_text = None if subject is None else str(subject)
    if subject_text is None:
        subject_json = "null"
    elif isinstance(subject, uuid.UUID):
        subject_json = f'"{subject_text}"'  # hex and hyphens: nothing to escape
    else:
        subject_json = json.dumps(subject_text)
    body = (
        _head(event_type) % event_id
        + '"time":"%s","subject":%s,"datacontenttype":"application/json","data":%s}'
        % (_time(now), subject_json, data_json)
    )
    return {
        "event_id": event_id,
        "type": event_type,
        "routing_key": _routing_key(event_type, channel),
        "subject": subject_text,
        "created_at": now,
        "body": body,
    }
