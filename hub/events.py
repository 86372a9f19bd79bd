"""Outbox rows: CloudEvents serialized once, at the moment of the change (DESIGN section 5)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from schemas import EVENT_SOURCE, routing_key

from .ids import new_id


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
        data_json = json.dumps(data or {}, separators=(",", ":"), default=str)
    subject_text = str(subject) if subject is not None else None
    body = (
        '{"specversion":"1.0","id":"%s","type":%s,"source":%s,"time":"%s","subject":%s,'
        '"datacontenttype":"application/json","data":%s}'
        % (event_id, json.dumps(event_type), json.dumps(EVENT_SOURCE), now.isoformat(),
           json.dumps(subject_text), data_json)
    )
    return {
        "event_id": event_id,
        "type": event_type,
        "routing_key": routing_key(event_type, channel),
        "subject": subject_text,
        "created_at": now,
        "body": body,
    }
