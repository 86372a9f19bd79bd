"""Websockets that stay authorized only as long as their credentials do, and only from allowed pages.

A socket is authorized once, at its upgrade, by a one-time ticket (hub.access.auth). Without more, it
would outlive a logout, a disabled user, a revoked key or an expired session, and keep receiving
offers with customers' words. So every open socket is registered here with the credential it stands
for; one loop per hub process re-checks all of them every `auth.socket_recheck_s` in one query per
kind (sessions, keys) and closes the ones whose credential ended, with close code 4401 and the reason.
Each action a socket sends is re-checked too (`still_valid`), so nothing acts on a dead credential
between two rounds.

The Origin check: a browser page on another site can open a websocket to the hub through an agent's
browser (cookies are not needed when auth is off), so a socket opened from a page whose Origin is
neither the hub's own nor in `auth.socket_origins` is refused. A client that sends no Origin is not a
browser page and is let through (a browser always sends one on a websocket).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.access import store
from hub.http_errors import error_response

log = logging.getLogger("omnihub.auth")

CLOSE_CREDENTIALS_ENDED = 4401  # private-use close code: the client should log in again, not retry

Close = Callable[[str], Awaitable[object]]


@dataclass(eq=False)
class WatchedSocket:
    credential_sha256: str
    kind: str  # token or key
    expires_at: float | None
    close: Close
    closed: bool = field(default=False)


class SocketWatch:
    def __init__(self, engine: Callable[[], AsyncEngine], recheck_s: float) -> None:
        self._engine = engine
        self._recheck_s = recheck_s
        self._sockets: set[WatchedSocket] = set()
        self._task: asyncio.Task[None] | None = None

    def register(self, credential_sha256: str, kind: str, expires_at: float | None, close: Close) -> WatchedSocket:
        watched = WatchedSocket(credential_sha256, kind, expires_at, close)
        self._sockets.add(watched)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="omnihub-socket-watch")
        return watched

    def unregister(self, watched: WatchedSocket) -> None:
        self._sockets.discard(watched)

    async def still_valid(self, watched: WatchedSocket) -> bool:
        """Re-check one socket's credential now (before acting on what it sent); closes it if ended."""
        ended = await self._ended([watched])
        if ended:
            await self._close(watched, ended[watched])
        return not ended

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failing = False
        while self._sockets:
            await asyncio.sleep(self._recheck_s)
            try:
                ended = await self._ended(list(self._sockets))
            except Exception as exc:  # noqa: BLE001 - a database blip must not stop the watch
                if not failing:
                    log.warning("socket credential re-check failed; retrying", extra={"error_type": type(exc).__name__})
                failing = True
                continue
            if failing:
                log.info("socket credential re-check works again")
                failing = False
            for watched, reason in ended.items():
                await self._close(watched, reason)

    async def _ended(self, sockets: list[WatchedSocket]) -> dict[WatchedSocket, str]:
        now = time.time()
        ended = {s: "expired" for s in sockets if s.expires_at is not None and s.expires_at <= now}
        rest = [s for s in sockets if s not in ended and not s.closed]
        if not rest:
            return ended
        tokens = {s.credential_sha256 for s in rest if s.kind == "token"}
        keys = {s.credential_sha256 for s in rest if s.kind == "key"}
        async with self._engine().connect() as conn:
            live = await store.live_credentials(conn, tokens, keys, datetime.now(UTC))
        for s in rest:
            if s.credential_sha256 not in live:
                ended[s] = "revoked" if s.kind == "key" else "ended"
        return ended

    async def _close(self, watched: WatchedSocket, reason: str) -> None:
        if watched.closed:
            return
        watched.closed = True
        self._sockets.discard(watched)
        log.info("socket closed: credentials no longer valid", extra={"reason": reason, "kind": watched.kind})
        with contextlib.suppress(Exception):
            await watched.close(reason)


def origin_refusal(request: web.Request, allowed: tuple[str, ...] | list[str]) -> web.Response | None:
    """403 for a websocket opened from a page on another site; None when it may go on."""
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    origin = origin.rstrip("/").lower()
    own = f"{request.scheme}://{request.host}".lower()
    parts = urlsplit(origin)
    if origin == own or (parts.netloc and parts.netloc == request.host.lower()) or origin in allowed:
        return None
    return error_response(403, "forbidden_origin", "this socket may not be opened from that page's origin",
                          [{"field": "Origin", "message": "not the hub's own origin nor in auth.socket_origins"}])
