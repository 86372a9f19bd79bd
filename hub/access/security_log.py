"""The security event log: logins, failures, throttling, lockouts, unlocks, password changes and API
key use, kept in the database (security_events) for review and written as a structured log line.

Never a password, token or key: a key is named by the name it was created with. A key's use is
recorded once per key per `key_use_interval_s` on each hub process, not per request: the log says
which keys are in use and from where, without a write on every authenticated request.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.storage.auth_models import security_events

log = logging.getLogger("omnihub.security")

LOGIN = "login"
LOGIN_FAILED = "login_failed"
LOGIN_THROTTLED = "login_throttled"
LOGIN_LOCKED = "login_locked"  # an attempt on a locked account
ACCOUNT_LOCKED = "account_locked"  # the failure that locked it
UNLOCKED = "unlocked"
PASSWORD_CHANGED = "password_changed"
PASSWORD_CHANGE_FAILED = "password_change_failed"
LOGOUT = "logout"
KEY_USED = "key_used"


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    kind: str
    at: datetime
    username: str | None = None
    key_name: str | None = None
    client: str | None = None
    actor: str | None = None


async def record(conn: AsyncConnection, event: SecurityEvent) -> None:
    """Store `event` in the caller's transaction and log it."""
    await conn.execute(insert(security_events).values(
        at=event.at, kind=event.kind, username=event.username, key_name=event.key_name, client=event.client,
        actor=event.actor))
    fields = {k: v for k, v in (("username", event.username), ("key_name", event.key_name),
                                ("client", event.client), ("actor", event.actor)) if v is not None}
    log.info("security event", extra={"event": event.kind, **fields})


def _cursor(event_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": event_id}).encode()).decode().rstrip("=")


def before_id(cursor: str) -> int:
    """The id a cursor from `page` continues before; ValueError when it isn't one of ours."""
    padded = cursor + "=" * (-len(cursor) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode()))["before"]
    if not isinstance(value, int):
        raise ValueError("not a cursor")
    return value


async def page(conn: AsyncConnection, *, limit: int, before: int | None = None,
               username: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first: up to `limit` events and the cursor of the next page (None at the end)."""
    stmt = select(security_events).order_by(security_events.c.id.desc()).limit(limit + 1)
    if before is not None:
        stmt = stmt.where(security_events.c.id < before)
    if username is not None:
        stmt = stmt.where(security_events.c.username == username)
    rows = [dict(r._mapping) for r in await conn.execute(stmt)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (_cursor(rows[-1]["id"]) if more else None)
