"""Statements on the authentication tables (hub.storage.auth_models), on an async connection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.storage.auth_models import api_keys, sessions, users, ws_tickets


@dataclass(frozen=True, slots=True)
class UserRow:
    username: str
    password_hash: str
    role: str
    agent_id: str | None
    created_at: datetime
    disabled_at: datetime | None


async def get_user(conn: AsyncConnection, username: str) -> UserRow | None:
    row = (await conn.execute(select(users).where(users.c.username == username))).first()
    return UserRow(**row._mapping) if row is not None else None


async def add_user(conn: AsyncConnection, *, username: str, password_hash: str, role: str,
                   agent_id: str | None, now: datetime) -> None:
    await conn.execute(insert(users).values(username=username, password_hash=password_hash, role=role,
                                            agent_id=agent_id, created_at=now))


async def set_password(conn: AsyncConnection, username: str, password_hash: str) -> bool:
    result = await conn.execute(update(users).where(users.c.username == username)
                                .values(password_hash=password_hash))
    return result.rowcount > 0


async def disable_user(conn: AsyncConnection, username: str, now: datetime) -> bool:
    """Disable a user and end its sessions; False if there is no such user."""
    result = await conn.execute(update(users).where(users.c.username == username, users.c.disabled_at.is_(None))
                                .values(disabled_at=now))
    await conn.execute(delete(sessions).where(sessions.c.username == username))
    return result.rowcount > 0


async def list_users(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(select(users.c.username, users.c.role, users.c.agent_id, users.c.created_at,
                                     users.c.disabled_at).order_by(users.c.username))
    return [dict(r._mapping) for r in rows]


async def add_session(conn: AsyncConnection, *, token_sha256: str, username: str, now: datetime,
                      expires_at: datetime) -> None:
    # Expired sessions go when a new one is made: the table holds roughly the live ones.
    await conn.execute(delete(sessions).where(sessions.c.expires_at < now))
    await conn.execute(insert(sessions).values(token_sha256=token_sha256, username=username, created_at=now,
                                               expires_at=expires_at))


async def session_user(conn: AsyncConnection, token_sha256: str) -> tuple[UserRow, datetime] | None:
    """The user of a session and when the session expires (expired or not: the caller decides)."""
    row = (await conn.execute(
        select(users, sessions.c.expires_at).join(sessions, sessions.c.username == users.c.username)
        .where(sessions.c.token_sha256 == token_sha256)
    )).first()
    if row is None:
        return None
    fields = dict(row._mapping)
    expires_at = fields.pop("expires_at")
    return UserRow(**fields), expires_at


async def end_sessions(conn: AsyncConnection, username: str, keep: str | None = None) -> None:
    """End every session of `username` but the one whose token digest is `keep`."""
    stmt = delete(sessions).where(sessions.c.username == username)
    if keep is not None:
        stmt = stmt.where(sessions.c.token_sha256 != keep)
    await conn.execute(stmt)


async def delete_session(conn: AsyncConnection, token_sha256: str) -> None:
    await conn.execute(delete(sessions).where(sessions.c.token_sha256 == token_sha256))


async def add_key(conn: AsyncConnection, *, name: str, key_sha256: str, scopes: list[str], now: datetime) -> None:
    await conn.execute(insert(api_keys).values(name=name, key_sha256=key_sha256, scopes=" ".join(scopes),
                                               created_at=now))


async def live_key(conn: AsyncConnection, key_sha256: str) -> tuple[str, list[str]] | None:
    """The name and scopes of an unrevoked key."""
    row = (await conn.execute(select(api_keys.c.name, api_keys.c.scopes)
                              .where(api_keys.c.key_sha256 == key_sha256, api_keys.c.revoked_at.is_(None)))).first()
    return (row.name, row.scopes.split()) if row is not None else None


async def list_keys(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(select(api_keys.c.name, api_keys.c.scopes, api_keys.c.created_at,
                                     api_keys.c.revoked_at).order_by(api_keys.c.name))
    return [{**r._mapping, "scopes": r.scopes.split()} for r in rows]


async def revoke_key(conn: AsyncConnection, name: str, now: datetime) -> bool:
    result = await conn.execute(update(api_keys).where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                                .values(revoked_at=now))
    return result.rowcount > 0


async def add_ticket(conn: AsyncConnection, *, ticket_sha256: str, credential_sha256: str, credential_kind: str,
                     now: datetime, expires_at: datetime) -> None:
    await conn.execute(delete(ws_tickets).where(ws_tickets.c.expires_at < now))
    await conn.execute(insert(ws_tickets).values(ticket_sha256=ticket_sha256, credential_sha256=credential_sha256,
                                                 credential_kind=credential_kind, expires_at=expires_at))


async def take_ticket(conn: AsyncConnection, ticket_sha256: str, now: datetime) -> tuple[str, str] | None:
    """Use a ticket up (in the caller's write transaction): the credential digest and kind it stands
    for, or None when it is unknown, used or expired."""
    row = (await conn.execute(select(ws_tickets).where(ws_tickets.c.ticket_sha256 == ticket_sha256))).first()
    if row is None:
        return None
    taken = await conn.execute(delete(ws_tickets).where(ws_tickets.c.ticket_sha256 == ticket_sha256))
    if taken.rowcount != 1 or row.expires_at <= now:
        return None  # another hub took it first, or too late
    return row.credential_sha256, row.credential_kind


async def live_credentials(conn: AsyncConnection, token_digests: set[str], key_digests: set[str],
                           now: datetime) -> set[str]:
    """Which of these sessions (unexpired, user enabled) and API keys (unrevoked) still hold."""
    live: set[str] = set()
    if token_digests:
        rows = await conn.execute(
            select(sessions.c.token_sha256).join(users, sessions.c.username == users.c.username)
            .where(sessions.c.token_sha256.in_(token_digests), sessions.c.expires_at > now,
                   users.c.disabled_at.is_(None)))
        live.update(rows.scalars())
    if key_digests:
        rows = await conn.execute(select(api_keys.c.key_sha256)
                                  .where(api_keys.c.key_sha256.in_(key_digests), api_keys.c.revoked_at.is_(None)))
        live.update(rows.scalars())
    return live
