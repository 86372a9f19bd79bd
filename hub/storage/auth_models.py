"""Authentication tables (DESIGN section 9): users, their login sessions, and integration API keys.

Nothing secret is stored in clear: passwords as scrypt hashes (salted per user), session tokens and
API keys as the SHA-256 of the random value handed out once. A random 256-bit value needs no slow
hash: nobody can guess it from its digest, and a plain digest lets a request be checked by one
indexed lookup.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text

from hub.storage.models import AutoBigInt, UTCDateTime, metadata

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

# Failed logins per account (`user:<name>`) and per client address (`addr:<ip>`), shared by every hub
# process on the database so throttling holds behind a load balancer (hub.access.throttle).
login_attempts = Table(
    "login_attempts",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("failures", Integer, nullable=False),  # consecutive, since the last success or reset
    Column("last_failure_at", UTCDateTime, nullable=False),
    Column("blocked_until", UTCDateTime),  # no attempt is even checked before this
    Column("locked_out_at", UTCDateTime),  # an account locked until an admin unlocks it
)

# What a security review asks for: who logged in, failed, was throttled or locked, changed a password,
# was unlocked, and when an API key was used. Never a password or a token.
security_events = Table(
    "security_events",
    metadata,
    Column("id", AutoBigInt, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("username", String(100)),
    Column("key_name", String(100)),
    Column("client", String(100)),  # the client's address
    Column("actor", String(100)),  # who did it, when not the user (an admin's unlock)
    Index("ix_security_events_at", "at"),
)

# One-time websocket tickets (POST /v1/auth/ws-ticket): a browser can't give a websocket headers, and a
# token in the URL would end up in access logs and history; a ticket is used once within seconds. It
# points at the credential it was issued for, so the socket is re-checked against that credential.
ws_tickets = Table(
    "ws_tickets",
    metadata,
    Column("ticket_sha256", String(64), primary_key=True),
    Column("credential_sha256", String(64), nullable=False),
    Column("credential_kind", String(8), nullable=False),  # token or key
    Column("expires_at", UTCDateTime, nullable=False),
)
