"""Authentication and authorization (DESIGN section 9), opt-in with `auth.enabled`.

Agents, supervisors and admins log in with a password (scrypt, salted per user) and get a session
token that expires after `auth.token_ttl_s`; integration clients send an API key with explicit
scopes. Both travel as `Authorization: Bearer ...` and nowhere else; a websocket, which browsers
cannot give headers, opens with a one-time ticket (`?ticket=`, from `POST /v1/auth/ws-ticket`) and
is re-checked while open (hub.access.sockets). Every route declares what it needs with `@requires(...)`: a scope, PUBLIC, or
AUTHENTICATED; `Authenticator.wrap` applies it in the one per-route wrapper (hub.api.errors), and
`POST /v1/interactions` checks inline. A role is a set of scopes; an `agent` user is further
restricted to its own agent_id and the profiles of its tasks (`restricted_agent`).

Tokens and keys are random 256-bit values stored as their SHA-256, so checking one is one indexed
read; a verified one is remembered for `auth.key_cache_s`, so a revoked key or a logged-out token
may still work that long on another hub process (on this one, logout forgets it at once).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, TypeVar

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.access import security_log, store
from hub.access.logins import Logins
from hub.access.passwords import hash_password, verify_password  # noqa: F401 - imported from here by callers
from hub.access.security_log import SecurityEvent
from hub.access.sockets import SocketWatch
from hub.http_errors import Handler, error_response, json_errors
from hub.settings import AuthSettings
from hub.storage.engine import writer

log = logging.getLogger("omnihub.auth")
H = TypeVar("H", bound=Callable[..., Any])


class Scope(StrEnum):
    INTERACTIONS_WRITE = "interactions:write"
    INTERACTIONS_READ = "interactions:read"
    PROFILES_READ = "profiles:read"
    PROFILES_WRITE = "profiles:write"
    MESSAGES_READ = "messages:read"
    MESSAGES_WRITE = "messages:write"
    CAMPAIGNS_READ = "campaigns:read"
    CAMPAIGNS_WRITE = "campaigns:write"
    TASKS = "tasks"  # an agent's own work: offers, accept/decline/wrap-up, presence, the websocket
    ROUTING = "routing"  # every queue, agent and task: transfer, cancel, any agent's presence
    RULES_ADMIN = "rules:admin"
    OUTBOX_READ = "outbox:read"
    METRICS = "metrics"
    ADMIN = "admin"  # everything


# A scope carries the narrower ones: a client that writes may read back what it wrote.
_IMPLIES: Final = {
    Scope.INTERACTIONS_WRITE: {Scope.INTERACTIONS_READ},
    Scope.PROFILES_WRITE: {Scope.PROFILES_READ},
    Scope.MESSAGES_WRITE: {Scope.MESSAGES_READ},
    Scope.CAMPAIGNS_WRITE: {Scope.CAMPAIGNS_READ},
    Scope.ROUTING: {Scope.TASKS},
    Scope.ADMIN: set(Scope),
}


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


ROLE_SCOPES: Final = {
    Role.AGENT: {Scope.TASKS, Scope.PROFILES_READ, Scope.INTERACTIONS_READ, Scope.MESSAGES_WRITE},
    Role.SUPERVISOR: {Scope.ROUTING, Scope.PROFILES_WRITE, Scope.INTERACTIONS_READ, Scope.MESSAGES_WRITE,
                      Scope.CAMPAIGNS_WRITE, Scope.OUTBOX_READ},
    Role.ADMIN: {Scope.ADMIN},
}

PUBLIC: Final = "public"  # no credentials: health, schemas, static files, signed provider webhooks
AUTHENTICATED: Final = "authenticated"  # any valid credentials (`/v1/auth/me`, logout)
_REQUIRES = "__omnihub_requires__"
TOKEN_PREFIX, KEY_PREFIX = "oht_", "ohk_"  # which table to look in, and what a leaked secret is
TICKET_PREFIX = "ohw_"  # a one-time websocket ticket


def requires(need: Scope | str) -> Callable[[H], H]:
    """Declare what a route needs: a Scope, PUBLIC or AUTHENTICATED."""
    if need not in (PUBLIC, AUTHENTICATED):
        need = Scope(need)

    def mark(handler: H) -> H:
        setattr(handler, _REQUIRES, need)
        return handler
    return mark


def required(handler: Callable[..., Any]) -> Scope | str | None:
    """What a handler declared with @requires (None: nothing, which wrap refuses)."""
    return getattr(handler, _REQUIRES, None)


def expand(scopes: set[str] | frozenset[str]) -> frozenset[str]:
    out = set(scopes)
    for scope in scopes:
        out |= _IMPLIES.get(scope, set())  # type: ignore[call-overload]
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    kind: str  # user or key
    scopes: frozenset[str]  # expanded
    role: str | None = None
    agent_id: str | None = None
    expires_at: float | None = None  # a session's end (epoch seconds)
    credential_sha256: str | None = None  # what it was verified from, for re-checking an open socket

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def view(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "role": self.role, "agent_id": self.agent_id,
                "scopes": sorted(self.scopes)}


# Where the wrapper leaves the authenticated Principal on the request. web.RequestKey (aiohttp 3.13+)
# is typed and warning-free; an older aiohttp takes a plain string.
PRINCIPAL: Final[Any] = (web.RequestKey("omnihub.principal", Principal) if hasattr(web, "RequestKey")
                         else "omnihub.principal")


def principal(request: web.Request) -> Principal | None:
    """Who made this request (None with auth disabled, or on a public route)."""
    return request.get(PRINCIPAL)


def restricted_agent(request: web.Request) -> str | None:
    """The agent_id an `agent` user is confined to; None for everyone else (and with auth off)."""
    who = request.get(PRINCIPAL)
    return who.agent_id if who is not None and who.role == Role.AGENT else None


# --- secrets ---
def new_secret(prefix: str) -> tuple[str, str]:
    """A random credential and the digest stored for it."""
    clear = prefix + secrets.token_urlsafe(32)
    return clear, digest(clear)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def credential(request: web.Request) -> str | None:
    """The bearer credential a request carries, from its Authorization header only: a token in the
    query string would end up in access logs and browser history (websockets use a ticket)."""
    header = request.headers.get("Authorization")
    if header is not None:
        kind, _, value = header.partition(" ")
        return value.strip() or None if kind.lower() == "bearer" else None
    return None


def ws_ticket(request: web.Request) -> str | None:
    """The one-time ticket a websocket upgrade carries as `?ticket=` (POST /v1/auth/ws-ticket)."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return None
    return request.query.get("ticket") or None


def unauthorized(message: str) -> web.Response:
    response = error_response(401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="omnihub"'
    return response


def forbidden(scope: str, message: str | None = None) -> web.Response:
    return error_response(403, "forbidden", message or f"this needs the scope {scope!r}",
                          [{"field": "scope", "message": scope}])


class Authenticator:
    """Checks credentials against the database, remembering verified ones for `key_cache_s`."""

    def __init__(self, settings: AuthSettings, engine: Callable[[], AsyncEngine]) -> None:
        self.enabled = settings.enabled
        self.settings = settings
        self._engine = engine
        self._cache: dict[str, tuple[Principal, float]] = {}
        self.logins = Logins(settings, engine)
        self.sockets = SocketWatch(engine, settings.socket_recheck_s)
        self._key_logged: dict[str, float] = {}  # key name -> when its use was last logged here

    # --- per route ---
    def wrap(self, handler: Handler) -> Handler:
        """`handler` answering its errors in JSON and, with auth enabled, first checking what it declared."""
        need = required(handler)
        if need is None:
            name = getattr(handler, "__qualname__", repr(handler))
            raise TypeError(f"route handler {name} declares no @requires(...) (a scope, PUBLIC or AUTHENTICATED)")
        if not self.enabled or need == PUBLIC:
            return json_errors(handler)
        return json_errors(handler, check=functools.partial(self.authorize, need))

    async def authorize(self, need: Scope | str, request: web.Request) -> web.Response | None:
        """None when the request may go on (its Principal stored on it), else the 401 or 403 answer."""
        given, ticket = credential(request), ws_ticket(request)
        if given is None and ticket is None:
            return unauthorized("this needs credentials: Authorization: Bearer <token or API key>"
                                " (a websocket: ?ticket= from POST /v1/auth/ws-ticket)")
        who = await self.verify(given) if given is not None else await self.redeem_ticket(ticket or "")
        if who is None:
            return unauthorized("the token or API key is invalid, expired or revoked")
        if need != AUTHENTICATED and not who.allows(need):
            return forbidden(need)
        request[PRINCIPAL] = who
        return None

    async def verify(self, credential: str) -> Principal | None:
        key = digest(credential)
        now = time.time()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            who = cached[0]
            return who if who.expires_at is None or who.expires_at > now else None
        if credential.startswith(TOKEN_PREFIX):
            who = await self._session(key, now)
        elif credential.startswith(KEY_PREFIX):
            who = await self._key(key)
        else:
            who = None
        if who is not None and self.settings.key_cache_s > 0:
            if len(self._cache) >= 10_000:  # a bound, not an LRU: a full cache only costs re-reads
                self._cache.clear()
            self._cache[key] = (who, now + self.settings.key_cache_s)
        return who

    async def _session(self, key: str, now: float) -> Principal | None:
        async with self._engine().connect() as conn:
            found = await store.session_user(conn, key)
        if found is None:
            return None
        user, expires_at = found
        if user.disabled_at is not None or expires_at.timestamp() <= now:
            return None
        return _user_principal(user, expires_at.timestamp(), key)

    async def _key(self, key: str) -> Principal | None:
        async with self._engine().connect() as conn:
            found = await store.live_key(conn, key)
        if found is None:
            return None
        name, scopes = found
        await self._log_key_use(name)
        return Principal(name=name, kind="key", scopes=expand(set(scopes)), credential_sha256=key)

    async def _log_key_use(self, name: str) -> None:
        now = time.time()
        if now - self._key_logged.get(name, -math.inf) < self.settings.key_use_interval_s:
            return
        self._key_logged[name] = now
        async with writer(self._engine()).begin() as conn:  # type: ignore[union-attr]
            await security_log.record(conn, SecurityEvent(security_log.KEY_USED, datetime.now(UTC), key_name=name))

    # --- sessions ---
    async def login(self, username: str, password: str,
                    client: str | None = None) -> tuple[str, datetime, Principal] | None:
        """A new session for the right password; None otherwise. Raises LoginThrottled or
        AccountLocked (hub.access.logins) while the account or the client's address is blocked."""
        user = await self.logins.check_password(username, password, client)
        if user is None:
            log.info("login refused", extra={"username": username})
            return None
        token, key = new_secret(TOKEN_PREFIX)
        expires_at = await self.logins.start_session(user, key, client)
        log.info("login", extra={"username": username, "role": user.role})
        return token, expires_at, _user_principal(user, expires_at.timestamp(), key)

    # --- websocket tickets ---
    async def issue_ticket(self, who: Principal) -> tuple[str, datetime]:
        """A one-time ticket standing for `who`'s credential, for opening one websocket."""
        if who.credential_sha256 is None:
            raise ValueError("a principal verified from no credential")
        ticket, key = new_secret(TICKET_PREFIX)
        now = datetime.now(UTC)
        expires_at = now + timedelta(seconds=self.settings.ws_ticket_ttl_s)
        async with writer(self._engine()).begin() as conn:  # type: ignore[union-attr]
            await store.add_ticket(conn, ticket_sha256=key, credential_sha256=who.credential_sha256,
                                   credential_kind="key" if who.kind == "key" else "token", now=now,
                                   expires_at=expires_at)
        return ticket, expires_at

    async def redeem_ticket(self, ticket: str) -> Principal | None:
        """The principal a ticket stands for, using the ticket up; None if unknown, used or expired."""
        if not ticket.startswith(TICKET_PREFIX):
            return None
        async with writer(self._engine()).begin() as conn:  # type: ignore[union-attr]
            taken = await store.take_ticket(conn, digest(ticket), datetime.now(UTC))
        if taken is None:
            return None
        credential_sha256, kind = taken
        return await (self._key(credential_sha256) if kind == "key" else self._session(credential_sha256, time.time()))

    def forget_user(self, username: str) -> None:
        """Drop this process's cached sessions of `username` (after a password change or a disable)."""
        for key, (who, _until) in list(self._cache.items()):
            if who.kind == "user" and who.name == username:
                self._cache.pop(key, None)

    async def logout(self, credential: str) -> None:
        key = digest(credential)
        self._cache.pop(key, None)
        async with writer(self._engine()).begin() as conn:  # type: ignore[union-attr]
            await store.delete_session(conn, key)


def _user_principal(user: store.UserRow, expires_at: float, token_sha256: str) -> Principal:
    role = Role(user.role)
    return Principal(name=user.username, kind="user", scopes=expand(ROLE_SCOPES[role]), role=role.value,
                     agent_id=user.agent_id if role is Role.AGENT else None, expires_at=expires_at,
                     credential_sha256=token_sha256)
