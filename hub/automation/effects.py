"""Carrying out rule actions: the rows they become, and the writes that store them.

Shared by the ingest step (hub.ingest.rules_step) and the scheduler (hub.automation.scheduler), so an action means
the same thing whether an interaction, a timer or a daily schedule produced it. Planning is pure;
`write_effects` runs on the caller's Core connection, inside the caller's transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from hub.broker.events import event_row
from hub.ids import new_id
from hub.profiles.segments import PROFILE_COLUMNS, SEGMENTS, SegmentSet, refresh
from hub.storage.batch import insert_rows
from hub.storage.models import outbox, profiles
from hub.storage.rules_models import scheduled_actions, timers
from rules import (
    Action,
    AddSegment,
    AutoReply,
    Evaluation,
    Publish,
    SendMessage,
    SetProfile,
    StartTimer,
    action_to_dict,
)
from schemas import EventType, Interaction

Attributed = tuple[str, Action]  # (rule name, action)


def attributed(evaluation: Evaluation) -> list[Attributed]:
    """The evaluation's actions, each with the rule that asked for it (same order as .actions)."""
    return [(t.name, a) for t in evaluation.trace if t.matched for a in t.compiled.actions]


def watch_key(conversation_key: str | None, profile_id: uuid.UUID | None, interaction_id: Any) -> str:
    """What a timer watches: the conversation when there is one, else the customer."""
    if conversation_key:
        return f"conversation:{conversation_key}"
    if profile_id is not None:
        return f"profile:{profile_id}"
    return f"interaction:{interaction_id}"


@dataclass
class Planned:
    events: list[dict[str, Any]] = field(default_factory=list)  # outbox rows
    profile_changes: list[tuple[str, SetProfile | AddSegment]] = field(default_factory=list)
    scheduled: list[dict[str, Any]] = field(default_factory=list)  # scheduled_actions rows
    timers: list[dict[str, Any]] = field(default_factory=list)  # timers rows
    cancel: tuple[str, tuple[tuple[str, str], ...]] | None = None  # (event type, (rule, timer) pairs)

    def needs_write(self) -> bool:
        return bool(self.profile_changes or self.scheduled or self.timers or self.cancel)


def plan(
    pairs: Sequence[Attributed],
    *,
    interaction: Interaction | None,
    profile_id: uuid.UUID | None,
    now: datetime,
    ruleset_version: str,
    defer: tuple[type, ...] = (),
) -> Planned:
    """Rows for the actions that outlive the evaluation; `defer` names extra action classes to
    store as scheduled actions (a fired timer's route or escalate, which no ingest step sees)."""
    out = Planned()
    document: str | None = None
    iid = interaction.id if interaction is not None else None
    for rule, action in pairs:
        match action:
            case Publish(event_type=event_type):
                if interaction is not None:
                    if document is None:
                        document = interaction.model_dump_json(exclude_none=True, by_alias=True)
                    out.events.append(event_row(event_type, now=now, data_json=document,
                                                channel=interaction.channel, subject=profile_id))
                else:
                    out.events.append(event_row(event_type, now=now, subject=profile_id,
                                                data={"profile_id": _str(profile_id), "rule": rule}))
            case SetProfile() | AddSegment():
                if profile_id is not None:
                    out.profile_changes.append((rule, action))
            case StartTimer():
                conversation = interaction.conversation_key if interaction is not None else None
                out.timers.append({
                    "id": new_id(), "rule": action.rule, "name": action.name,
                    "key": watch_key(conversation, profile_id, iid), "due_at": now + action.after,
                    "interaction_id": iid, "profile_id": profile_id, "ruleset_version": ruleset_version,
                    "state": "pending", "created_at": now,
                })
            case SendMessage() | AutoReply():
                delay = action.delay if isinstance(action, SendMessage) else None
                out.scheduled.append(_scheduled(rule, action, profile_id, iid, now + delay if delay else now, now))
            case _ if isinstance(action, defer):
                out.scheduled.append(_scheduled(rule, action, profile_id, iid, now, now))
    return out


def _scheduled(rule: str, action: Action, profile_id: Any, iid: Any, due: datetime, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id(), "kind": action.kind, "rule": rule,
        "payload": json.dumps(action_to_dict(action), ensure_ascii=False, default=str),
        "profile_id": profile_id, "interaction_id": iid, "due_at": due, "created_at": now, "state": "pending",
    }


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def write_effects(conn: Connection, planned: Planned, *, key: str | None, profile_id: uuid.UUID | None,
                  now: datetime, segment_set: SegmentSet | None = None) -> None:
    """Store what `plan` produced (all but its events, which the caller files with its own)."""
    if planned.cancel is not None and key is not None:
        cancel_timers(conn, planned.cancel[0], planned.cancel[1], key=key, profile_id=profile_id, now=now)
    insert_rows(conn, timers, planned.timers)
    insert_rows(conn, scheduled_actions, planned.scheduled)
    if planned.profile_changes and profile_id is not None:
        apply_profile_changes(conn, profile_id, planned.profile_changes, now, segment_set)


def cancel_timers(conn: Connection, event_type: str, names: Sequence[tuple[str, str]], *, key: str,
                  profile_id: uuid.UUID | None, now: datetime) -> int:
    """Cancel pending timers on this conversation or customer whose cancel_on has `event_type`."""
    c = timers.c
    same = c.key == key if profile_id is None else or_(c.key == key, c.profile_id == profile_id)
    named = or_(*(and_(c.rule == rule, c.name == name) for rule, name in names))
    result = conn.execute(
        update(timers).where(c.state == "pending", same, named)
        .values(state="cancelled", ended_at=now, reason=f"cancelled by {event_type}")
    )
    return result.rowcount or 0


def apply_profile_changes(conn: Connection, profile_id: uuid.UUID,
                          changes: Sequence[tuple[str, SetProfile | AddSegment]], now: datetime,
                          segment_set: SegmentSet | None = None) -> dict[str, Any]:
    """Read-modify-write the profile in the caller's transaction; emit `profile.updated` if it changed,
    then recompute its configured `segments` (a second event, source `segments`, if they moved).

    Done at write time, not from the step's snapshot: two interactions of one customer in the same
    group commit must both see each other's changes.
    """
    c = profiles.c
    row = conn.execute(
        select(*(c[name] for name in PROFILE_COLUMNS), c.segments, c.attributes).where(c.id == profile_id)
    ).mappings().first()
    if row is None:
        return {}
    attrs = json.loads(row["attributes"] or "{}")
    segments = list(json.loads(row["segments"] or "[]"))
    columns: dict[str, Any] = {}
    changed: dict[str, Any] = {}
    for _rule, action in changes:
        if isinstance(action, AddSegment):
            if action.segment not in segments:
                segments.append(action.segment)
                columns[SEGMENTS] = json.dumps(segments, ensure_ascii=False)
                changed[SEGMENTS] = list(segments)
            continue
        if action.field in PROFILE_COLUMNS:
            value = _column_value(action.field, action.value)
            if columns.get(action.field, row[action.field]) != value:
                columns[action.field] = value
                changed[action.field] = _plain(value)
            continue
        name, value = action.field.removeprefix("attributes."), _plain(action.value)
        if attrs.get(name) != value:
            attrs[name] = changed[name] = value
            columns["attributes"] = json.dumps(attrs, ensure_ascii=False)
    if not changed:
        return {}
    conn.execute(update(profiles).where(c.id == profile_id).values(
        **columns, updated_at=now, version=c.version + 1,
    ))
    rules = sorted({rule for rule, _ in changes})
    insert_rows(conn, outbox, [event_row(
        EventType.PROFILE_UPDATED, now=now, subject=profile_id,
        data={"profile_id": str(profile_id), "changed": changed, "source": "rules", "rules": rules},
    )])
    refresh(conn, segment_set, [profile_id], now)
    return changed


def _column_value(name: str, value: Any) -> Any:
    if name == "birthday" and isinstance(value, str):
        return date.fromisoformat(value)
    if name == "birthday" or value is None:
        return value
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, date):  # datetime is a date too
        return value.isoformat()
    return value
