"""What the back-office commands write (synchronous Core, in the command's own transaction).

Each function runs inside the transaction the command consumer opens, together with the
command_log row that makes a redelivered command a no-op and the `command.completed` event that
answers it: the command is acked only after that transaction commits.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, select

from hub.broker.events import event_row
from hub.ids import new_id
from hub.outbound.scheduled_sends import PENDING_SEND_KIND
from hub.profiles import store as profiles_repo
from hub.profiles.segments import SegmentSet, refresh
from hub.storage import batch as store
from hub.storage.backoffice_models import command_log
from hub.storage.models import identifiers, outbox, profiles
from hub.storage.rules_models import scheduled_actions
from schemas import EventType, IdentifierType
from schemas.commands import CommandName, MessageSend, ProfileUpsert


def logged_result(conn: Connection, message_id: str) -> dict[str, Any] | None:
    """The result of a command already applied under this message_id, or None."""
    row = conn.execute(select(command_log.c.result).where(command_log.c.message_id == message_id)).scalar()
    return None if row is None else json.loads(row)


def record(conn: Connection, *, message_id: str, command: str, outcome: str, result: dict[str, Any],
           now: datetime, correlation_id: str | None = None, subject: uuid.UUID | None = None) -> None:
    """Log the command under its message_id and answer it with an event (routing key
    `command.<outcome>.<command>`), both in the caller's transaction."""
    conn.execute(command_log.insert().values(message_id=message_id, command=command, outcome=outcome,
                                             result=json.dumps(result, default=str), applied_at=now))
    data = {"command": command, "message_id": message_id, "correlation_id": correlation_id, **result}
    store.insert_rows(conn, outbox, [event_row(
        EventType.COMMAND_COMPLETED if outcome == "completed" else EventType.COMMAND_REJECTED,
        now=now, channel=command, subject=subject, data=data)])


def upsert_profile(conn: Connection, cmd: ProfileUpsert, *, now: datetime, segments: SegmentSet | None) -> dict[str, Any]:
    """Create or update the profile holding the external id; returns the command's result."""
    external = (IdentifierType.EXTERNAL.value, cmd.external_id)
    changes = _typed(cmd.fields.model_dump(mode="json", exclude_unset=True))
    pid = profiles_repo.find_by_identifier(conn, external)
    created = pid is None
    changed: list[str] = []
    if pid is None:
        pid = new_id()
        initial = _initial(changes)
        row = {"id": pid, "created_at": now, "updated_at": now, "attributes": "{}", **store.encode_fields(initial)}
        conn.execute(profiles.insert().values(**row))
        changed = sorted(initial)
        conn.execute(identifiers.insert().values(type=external[0], value=external[1], profile_id=pid, created_at=now))
        store.insert_rows(conn, outbox, [event_row(
            EventType.PROFILE_CREATED, now=now, subject=pid,
            data={"profile_id": str(pid), "display_name": initial.get("display_name"), "source": "command"})])
    else:
        pid = profiles_repo.survivor(conn, pid)
    if changes and not created:
        before = profiles_repo.live(conn, pid)
        after = profiles_repo.patch(conn, pid, changes, if_version=None, now=now, source="command")
        changed = sorted(k for k in changes if after.get(k) != before.get(k))
    attached, conflicts = _attach(conn, pid, [i.key for i in cmd.identifiers if i.key != external], now)
    if segments:
        refresh(conn, segments, [pid], now)
    return {"profile_id": str(pid), "created": created, "changed": changed,
            "identifiers_attached": attached, "identifiers_conflicting": conflicts}


def _typed(changes: dict[str, Any]) -> dict[str, Any]:
    # JSON mode gave JSON-able values (consents' times as text, as the API stores them); the
    # birthday column wants a date back.
    if changes.get("birthday") is not None:
        changes["birthday"] = date.fromisoformat(changes["birthday"])
    return changes


def _initial(changes: dict[str, Any]) -> dict[str, Any]:
    """A new profile's fields: nulls mean "clear", which on a new profile is simply absent."""
    out = {k: v for k, v in changes.items() if v is not None}
    for name in ("attributes", "consents"):
        if name in out:
            out[name] = {k: v for k, v in out[name].items() if v is not None}
    return out


def _attach(conn: Connection, pid: uuid.UUID, keys: list[tuple[str, str]], now: datetime) -> tuple[list[str], list[str]]:
    if not keys:
        return [], []
    held = store.find_identifiers(conn, keys)
    new = [k for k in dict.fromkeys(keys) if k not in held]
    store.insert_rows(conn, identifiers, [{"type": t, "value": v, "profile_id": pid, "created_at": now} for t, v in new])
    # Only the types, not the values: the result goes into an event and the log.
    conflicts = sorted({t for (t, _), owner in held.items() if owner != pid})
    return [t for t, _ in new], conflicts


def queue_message(conn: Connection, cmd: MessageSend, *, message_id: str, now: datetime) -> dict[str, Any]:
    """Keep a message.send for the outbound module (no sender registered in this hub)."""
    action_id = new_id()
    payload = {"command": CommandName.MESSAGE_SEND.value, "message_id": message_id, **cmd.model_dump(mode="json")}
    conn.execute(scheduled_actions.insert().values(
        id=action_id, kind=PENDING_SEND_KIND, rule=None, payload=json.dumps(payload), profile_id=cmd.to.profile_id,
        interaction_id=None, due_at=now, created_at=now, state="pending"))
    return {"queued": True, "action_id": str(action_id)}
