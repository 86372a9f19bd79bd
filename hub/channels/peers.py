"""Messages between hub processes: what one hub has for a websocket another hub holds (a chat reply
for a visitor, an offer for an agent), and agents' routing operations for the hub that routes.

Several hubs behind a load balancer (DESIGN section 7, scale-out) each hold some of the sockets: a
visitor's widget on hub A, the agent's reply sent through hub B; the router active on hub A, the
agent's console on hub C. A hub delivers to its own sockets at once and tells its peers here.

Why PostgreSQL LISTEN/NOTIFY and not a RabbitMQ fan-out exchange: several hubs can only run on
PostgreSQL (SQLite is one process), while a broker is optional (the embedded default has none, and
a broker outage must not stop chat). So NOTIFY is there exactly when peers exist, with no topology
to declare, no credentials more, and no second system whose outage splits the hubs. Its limits are
handled, or accepted on purpose:
- A NOTIFY payload is under 8000 bytes. A larger message (a 4,000-character chat reply in Hangul,
  a wrap-up note) is sent in parts, all NOTIFYs of one transaction, so PostgreSQL delivers them
  together, in order, or not at all, and the listener joins them. (Notifying an id to read from
  a row would need a table for frames and operations that have no row of their own.)
- A hub not listening at that moment (reconnecting) misses what was sent meanwhile. That loses
  nothing that must survive, since it is durable already: a chat reply stays pending until the
  widget confirms it and is sent again at its next hello, an offer is a task row that a
  reconnecting console reloads; an operation asked of the routing hub gets no answer and the API
  answers 503.

With SQLite there are no peers: `LocalPeers` publishes nowhere and everything stays in-process.
Each hub's own NOTIFY comes back to it too; it is dropped by the sender's node id.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.storage.engine import is_sqlite
from hub.tasks import cancel_and_wait

log = logging.getLogger("omnihub.peers")

CHANNEL = "omnihub_peers"
APPLICATION_NAME = "omnihub-peers"  # the listening session, as pg_stat_activity names it
MAX_PAYLOAD_BYTES = 7999  # PostgreSQL refuses a NOTIFY payload of 8000 bytes or more
MAX_MESSAGE_BYTES = 256 * 1024  # in parts: far above any frame or operation the hub sends
_PART_BYTES = 3500  # of the message's text per part: JSON escaping at most doubles it
_RECONNECT_MAX_S = 5.0

# A handler gets the body a peer published; for a request, what it returns is the answer (None:
# not this hub's to answer, e.g. a hub that is not routing).
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


class PayloadTooLarge(ValueError):
    """A message over MAX_MESSAGE_BYTES: the caller sends an id to read instead."""


class NoPeerAnswered(TimeoutError):
    """No hub answered a request in time (none routing, or the one routing is unreachable)."""


class Peers(Protocol):
    node_id: str
    shared: bool  # False: one process (SQLite), nobody to tell

    def subscribe(self, kind: str, handler: Handler) -> None: ...
    async def publish(self, kind: str, body: dict[str, Any]) -> None: ...
    async def request(self, kind: str, body: dict[str, Any], timeout: float) -> dict[str, Any]: ...
    def status(self) -> dict[str, Any]: ...


def encode(node_id: str, kind: str, body: dict[str, Any], **extra: Any) -> list[str]:
    """The NOTIFY payloads of one message: itself, or its parts when it is over NOTIFY's limit."""
    payload = json.dumps({"n": node_id, "k": kind, "b": body, **extra}, ensure_ascii=False, separators=(",", ":"))
    size = len(payload.encode())
    if size <= MAX_PAYLOAD_BYTES:
        return [payload]
    if size > MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(f"{kind}: {size} bytes")
    pieces, piece, piece_bytes = [], [], 0
    for char in payload:
        width = len(char.encode())
        if piece_bytes + width > _PART_BYTES:
            pieces.append("".join(piece))
            piece, piece_bytes = [], 0
        piece.append(char)
        piece_bytes += width
    pieces.append("".join(piece))
    part_id = uuid.uuid4().hex
    return [json.dumps({"n": node_id, "part": part_id, "i": i, "of": len(pieces), "p": p},
                       ensure_ascii=False, separators=(",", ":")) for i, p in enumerate(pieces)]


class _Parts:
    """Messages arriving in parts: kept until whole (parts of one message come in one transaction,
    so only a listener reconnecting between them leaves one unfinished; the oldest go first)."""

    def __init__(self, keep: int = 64) -> None:
        self._open: collections.OrderedDict[str, dict[int, str]] = collections.OrderedDict()
        self._keep = keep

    def add(self, part: dict[str, Any]) -> str | None:
        pieces = self._open.setdefault(part["part"], {})
        pieces[int(part["i"])] = part["p"]
        if len(pieces) < int(part["of"]):
            while len(self._open) > self._keep:
                self._open.popitem(last=False)
            return None
        del self._open[part["part"]]
        return "".join(pieces[i] for i in range(len(pieces)))


class LocalPeers:
    """One process (SQLite): no peers, nothing to tell, nobody else to ask."""

    shared = False

    def __init__(self) -> None:
        self.node_id = uuid.uuid4().hex

    def subscribe(self, kind: str, handler: Handler) -> None:
        pass

    async def publish(self, kind: str, body: dict[str, Any]) -> None:
        encode(self.node_id, kind, body)  # the same limit as with peers, so callers meet it in tests too

    async def request(self, kind: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        raise NoPeerAnswered("no other hub process (SQLite)")

    def status(self) -> dict[str, Any]:
        return {"transport": "local", "state": "up"}


class PgPeers:
    """LISTEN on one connection of its own (outside the pool: it is held for the process's life);
    NOTIFY through the engine's pool."""

    shared = True

    def __init__(self, engine: AsyncEngine, channel: str = CHANNEL) -> None:
        self.node_id = uuid.uuid4().hex
        self._engine = engine
        self._channel = channel
        self._dsn = make_url(engine.url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._handlers: dict[str, list[Handler]] = {}
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._jobs: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._outage_logged = False
        self._parts = _Parts()

    def subscribe(self, kind: str, handler: Handler) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    async def start(self) -> None:
        self._runner = asyncio.create_task(self._listen_forever(), name="omnihub-peers")

    async def stop(self) -> None:
        await cancel_and_wait(self._runner)
        self._runner = None
        for job in list(self._jobs):
            job.cancel()
        for waiter in self._waiting.values():
            waiter.cancel()

    async def wait_listening(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._listening.wait()
        return self._listening.is_set()

    def status(self) -> dict[str, Any]:
        return {"transport": "postgresql", "state": "up" if self._listening.is_set() else "down"}

    async def publish(self, kind: str, body: dict[str, Any]) -> None:
        """Tell every peer, best effort (see the module docstring for why a miss loses nothing)."""
        payloads = encode(self.node_id, kind, body)
        try:
            await self._notify(payloads)
        except Exception as exc:  # noqa: BLE001 - the database's outage is reported by /readyz
            log.warning("could not tell peers", extra={"kind": kind, "error": type(exc).__name__})

    async def request(self, kind: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Ask the peers; the first answer wins."""
        request_id = uuid.uuid4().hex
        payloads = encode(self.node_id, kind, body, r=request_id)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        try:
            await self._notify(payloads)
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            raise NoPeerAnswered(f"no hub answered {kind} in {timeout} s") from None
        finally:
            self._waiting.pop(request_id, None)

    async def _notify(self, payloads: list[str]) -> None:
        """One transaction: a message's parts are delivered together, in order, or not at all."""
        async with self._engine.connect() as conn:
            for payload in payloads:
                await conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                                   {"channel": self._channel, "payload": payload})
            await conn.commit()

    async def _listen_forever(self) -> None:
        import asyncpg

        delay = 0.1
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10,
                                             server_settings={"application_name": APPLICATION_NAME})
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(self._channel, self._received)
                self._listening.set()
                if self._outage_logged:
                    log.info("listening to peers again")
                self._outage_logged, delay = False, 0.1
                while not lost.is_set():
                    # A connection cut without a FIN is only noticed by using it.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(5):
                            await lost.wait()
                    if not lost.is_set():
                        async with asyncio.timeout(5):
                            await conn.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect with backoff
                if not self._outage_logged:
                    log.warning("not listening to peers; messages for sockets held here wait for a reconnect",
                                extra={"error": type(exc).__name__})
                    self._outage_logged = True
            finally:
                self._listening.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_S)

    def _received(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
            if message["n"] == self.node_id:
                return
            if "part" in message:
                whole = self._parts.add(message)
                if whole is None:
                    return
                message = json.loads(whole)
            node, kind, body = message["n"], message["k"], message["b"]
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable peer message dropped")
            return
        if kind == "reply":
            waiter = self._waiting.get(message.get("r", ""))
            if waiter is not None and not waiter.done() and message.get("to") == self.node_id:
                waiter.set_result(body)
            return
        for handler in self._handlers.get(kind, ()):
            job = asyncio.create_task(self._handle(handler, kind, body, node, message.get("r")))
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)

    async def _handle(self, handler: Handler, kind: str, body: dict[str, Any], node: str, request_id: str | None) -> None:
        try:
            answer = await handler(body)
            if request_id is not None and answer is not None:
                await self._notify(encode(self.node_id, "reply", answer, r=request_id, to=node))
        except Exception:
            log.exception("peer message failed", extra={"kind": kind})


def peers_for(engine: AsyncEngine) -> LocalPeers | PgPeers:
    return LocalPeers() if is_sqlite(engine) else PgPeers(engine)
