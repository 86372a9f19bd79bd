"""Authentication tables (DESIGN section 9): users, their login sessions, and integration API keys.

Nothing secret is stored in clear: passwords as scrypt hashes (salted per user), session tokens and
API keys as the SHA-256 of the random value handed out once. A random 256-bit value needs no slow
hash: nobody can guess it from its digest, and a plain digest lets a request be checked by one
indexed lookup.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text

from hub.storage.models import UTCDateTime, metadata

users = Table(
    "users",
    metadata,
    Column("username", String(100), primary_key=True),
    Column("password_hash", String(255), nullable=False),  # scrypt$n$r$p$salt$hash (base64)
    Column("role", String(16), nullable=False),  # agent, supervisor, admin
    Column("agent_id", String(100)),  # the routing agent an `agent` user acts as
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("username", String(100), ForeignKey("users.username"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_sessions_expires_at", "expires_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("scopes", Text, nullable=False),  # space-separated
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)
