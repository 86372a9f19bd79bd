"""Web chat: a widget on the company's website talks to the hub over a websocket.

A site embeds `<script src="https://hub.example.com/chat/widget.js" async></script>`; the widget
opens `GET /v1/chat/ws` (DESIGN section 11; mounted through the SDK's `routes()`, not under
/channels/chat/). The socket's Origin must be one of `allowed_origins`, or the upgrade is answered
403: browsers always send it, and it is what stops another site from chatting as the embedding one.

The visitor is a `chat_visitor` identifier: a random id the hub issues in its `welcome` frame,
signed with `secret` (HMAC-SHA256), which the widget keeps in localStorage and presents in its
`hello`; a token the hub did not sign is refused (error frame, close 4403), so a visitor cannot
claim another's id. A name and an email given in `hello` join the sender; the email then joins the
visitor to an existing profile through the hub's identity resolution.

Inbound: each `message` frame is ingested (committed) before its `ack` carries the interaction id;
`<visitor>:<the widget's message id>` is the dedupe key, so a widget resending after a dropped ack
makes no second interaction. One conversation_key per visitor session: a session ends after
`session_idle_s` without a message either way, as a contact center's chat transcript does.

Outbound: `send()` keeps the reply for the visitor (durably, in the adapter's state store) and hands
it to each of the visitor's open sockets; status `sent` means the hub holds it for the widget, and
it becomes `delivered` when the widget confirms it was shown (`delivered` frame), which also drops
it. Replies not confirmed are sent again at the visitor's next `hello`, after a drop or a restart.
Sockets live in one hub process; with several hubs behind a balancer a reply sent through another
hub reaches the socket through `deps.tell_peers` and `from_peer` (hub.channels.peers), no sticky
sessions needed.

Config keys: secret, allowed_origins, session_idle_s, max_text_chars, max_frame_bytes,
max_pending, hello_timeout_s.
"""

from __future__ import annotations

import asyncio
import json
import re
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import Field, SecretStr, ValidationError, field_validator

from schemas import Channel, Direction, Identifier, IdentifierType, Interaction, Kind

from . import chat_frames as frames
from .base import (
    AdapterConfig,
    Capabilities,
    ChannelAdapter,
    DeliveryStatus,
    HubUnavailable,
    OutboundMessage,
    PayloadError,
    PermanentSendError,
    Route,
    SendResult,
    StatusUpdate,
)

PROVIDER = "widget"
WIDGET_JS = Path(__file__).with_name("chat_widget.js")
FORBIDDEN = 4403  # close code for a visitor token the hub did not sign (the widget then starts afresh)
_ORIGIN = re.compile(r"^https?://[^/\s]+$")


class ChatConfig(AdapterConfig):
    secret: SecretStr = Field(min_length=16)  # signs visitor ids; changing it makes every visitor new
    allowed_origins: tuple[str, ...] = Field(min_length=1)  # sites that may embed the widget
    session_idle_s: int = Field(1800, gt=0)  # a new conversation_key after this much silence
    max_text_chars: int = Field(4000, gt=0)
    max_frame_bytes: int = Field(16384, ge=1024)  # a larger frame closes the socket (1009)
    max_pending: int = Field(200, gt=0)  # replies held for an absent visitor; past it a send fails
    hello_timeout_s: float = Field(10.0, gt=0)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if not _ORIGIN.match(origin.rstrip("/")):
                raise ValueError(f"{origin!r} is not an origin like https://www.example.com")
        return tuple(o.rstrip("/").lower() for o in value)


class ChatAdapter(ChannelAdapter):
    name: ClassVar[str] = "chat"
    channel: ClassVar[str] = Channel.CHAT.value
    provider: ClassVar[str] = PROVIDER
    Config: ClassVar[type[AdapterConfig]] = ChatConfig
    capabilities: ClassVar[Capabilities] = Capabilities(max_text_chars=4000)

    def __init__(self, config: ChatConfig, deps) -> None:  # type: ignore[override]
        super().__init__(config, deps)
        self.config: ChatConfig = config
        self._secret = config.secret.get_secret_value().encode()
        self._sockets: dict[str, set[web.WebSocketResponse]] = {}
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def routes(self) -> Sequence[Route]:
        return (Route("GET", "/v1/chat/ws", self._socket), Route("GET", "/chat/widget.js", self._widget))

    # --- inbound -------------------------------------------------------------------------------
    def normalize(self, raw: Mapping[str, Any]) -> Interaction:
        """`raw`: visitor_id, id (the widget's), text, conversation_key, and optional name, email."""
        for key in ("visitor_id", "id", "text", "conversation_key"):
            if not raw.get(key):
                raise PayloadError(key, "required")
        ids = [self._identifier(IdentifierType.CHAT_VISITOR, raw["visitor_id"], "visitor")]
        if raw.get("email"):
            ids.append(self._identifier(IdentifierType.EMAIL, raw["email"], "email"))
        try:
            return Interaction.model_validate({
                "channel": self.channel, "direction": Direction.INBOUND, "kind": Kind.MESSAGE,
                "provider": PROVIDER, "provider_ref": f"{ids[0].value}:{raw['id']}",
                "occurred_at": self.deps.clock(), "conversation_key": raw["conversation_key"],
                "sender": {"identifiers": ids, "display_name": raw.get("name") or None},
                "content": {"text": raw["text"]},
                "metadata": {"origin": raw["origin"]} if raw.get("origin") else {},
            }, context=self.deps.validation_context)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise PayloadError(".".join(str(p) for p in err["loc"]) or "frame", err["msg"]) from None

    def _identifier(self, kind: IdentifierType, value: str, field: str) -> Identifier:
        try:
            return Identifier.model_validate({"type": kind, "value": value}, context=dict(self.deps.validation_context))
        except ValidationError as exc:
            raise PayloadError(field, exc.errors()[0]["msg"]) from None

    async def _widget(self, request: web.Request) -> web.StreamResponse:
        """The chat widget a site embeds with one script tag (plain JavaScript, no build step)."""
        return web.FileResponse(WIDGET_JS, headers={
            "Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff", "Cross-Origin-Resource-Policy": "cross-origin"})

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        """The visitors' websocket (JSON frames: hello, message, delivered); Origin must be allowed."""
        origin = (request.headers.get("Origin") or "").rstrip("/").lower()
        if origin not in self.config.allowed_origins:
            self.deps.log.warning("chat socket refused: origin not allowed", extra={"origin": origin[:100]})
            return web.json_response({"error": "forbidden", "message": "Origin not allowed",
                                      "fields": [{"field": "Origin", "message": "not in allowed_origins"}]},
                                     status=403)
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=self.config.max_frame_bytes)
        if not ws.can_prepare(request).ok:
            return web.json_response({"error": "upgrade_required", "message": "a websocket endpoint"}, status=426)
        await ws.prepare(request)
        hello = await self._hello(ws)
        if hello is None:
            return ws
        visitor_id, who = hello
        self._sockets.setdefault(visitor_id, set()).add(ws)
        try:
            await ws.send_str(frames.dumps({"type": "welcome", "visitor": frames.sign(visitor_id, self._secret),
                                            "visitor_id": visitor_id}))
            for frame in await self._pending(visitor_id):
                await ws.send_str(frames.dumps(frame))
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._frame(ws, visitor_id, who, origin, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await ws.send_str(frames.dumps(frames.FrameError("frame", "send text frames").frame()))
        finally:
            self._sockets[visitor_id].discard(ws)
            if not self._sockets[visitor_id]:
                del self._sockets[visitor_id]
        return ws

    async def _hello(self, ws: web.WebSocketResponse) -> tuple[str, dict[str, str]] | None:
        """Wait for a valid `hello`: the visitor's id (checked, or a new one) and what they told us."""
        deadline = asyncio.get_running_loop().time() + self.config.hello_timeout_s
        while True:
            try:
                msg = await ws.receive(timeout=max(0.01, deadline - asyncio.get_running_loop().time()))
            except TimeoutError:
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"no hello")
                return None
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return None
            try:
                if msg.type is not WSMsgType.TEXT:
                    raise frames.FrameError("frame", "send text frames")
                frame = frames.parse(msg.data, self.config.max_text_chars)
                if not isinstance(frame, frames.Hello):
                    raise frames.FrameError("type", "the first frame must be hello")
                who = {"name": frame.name or "", "email": ""}
                if frame.email:
                    who["email"] = self._identifier(IdentifierType.EMAIL, frame.email, "email").value
            except (frames.FrameError, PayloadError) as exc:
                await ws.send_str(frames.dumps({"type": "error", "field": exc.field, "message": exc.message}))
                continue
            if frame.visitor is None:
                return frames.new_visitor_id(), who
            visitor_id = frames.verify(frame.visitor, self._secret)
            if visitor_id is None:
                self.deps.log.warning("chat visitor token refused")
                await ws.send_str(frames.dumps({"type": "error", "field": "visitor",
                                                "message": "not a visitor id this hub issued"}))
                await ws.close(code=FORBIDDEN, message=b"visitor id refused")
                return None
            return visitor_id, who

    async def _frame(self, ws: web.WebSocketResponse, visitor_id: str, who: dict[str, str], origin: str,
                     data: str) -> None:
        try:
            frame = frames.parse(data, self.config.max_text_chars)
        except frames.FrameError as exc:
            await ws.send_str(frames.dumps(exc.frame()))
            return
        match frame:
            case frames.Hello():
                await ws.send_str(frames.dumps(frames.FrameError("type", "hello was already said").frame()))
            case frames.Delivered():
                await self._delivered(visitor_id, str(frame.id))
            case frames.Say():
                try:
                    key = await self._session(visitor_id)
                    result = await self.deps.ingest(self.normalize({
                        "visitor_id": visitor_id, "id": frame.id, "text": frame.text, "conversation_key": key,
                        "origin": origin, **who}))
                except PayloadError as exc:
                    await ws.send_str(frames.dumps({"type": "error", "id": frame.id, "field": exc.field,
                                                    "message": exc.message}))
                    return
                except HubUnavailable:
                    # Nothing committed: the widget keeps the message and sends it again later.
                    await ws.send_str(frames.dumps({"type": "error", "id": frame.id, "field": None,
                                                    "error": "unavailable", "retry": True,
                                                    "message": "the hub cannot take messages right now"}))
                    return
                await ws.send_str(frames.dumps({"type": "ack", "id": frame.id,
                                                "interaction_id": str(result.interaction_id)}))

    # --- sessions and replies held for the visitor (the adapter's durable state) ----------------
    def _lock(self, visitor_id: str) -> asyncio.Lock:
        lock = self._locks.get(visitor_id)
        if lock is None:
            lock = self._locks[visitor_id] = asyncio.Lock()
        return lock

    async def _session(self, visitor_id: str, *, touch_only: bool = False) -> str:
        """The visitor's conversation_key: the current session's, or a new one after session_idle_s."""
        now = self.deps.clock()
        async with self._lock(visitor_id):
            raw = await self.deps.state.get(f"session:{visitor_id}")
            session = json.loads(raw) if raw else None
            if session is None or now - datetime.fromisoformat(session["last"]) > timedelta(
                    seconds=self.config.session_idle_s):
                if touch_only:
                    return session["key"] if session else f"chat:{visitor_id}"
                session = {"key": f"chat:{visitor_id}:{now.strftime('%Y%m%dT%H%M%S')}"}
            session["last"] = now.isoformat()
            await self.deps.state.set(f"session:{visitor_id}", json.dumps(session))
            return session["key"]

    async def _pending(self, visitor_id: str) -> list[dict[str, Any]]:
        raw = await self.deps.state.get(f"pending:{visitor_id}")
        return json.loads(raw) if raw else []

    async def _delivered(self, visitor_id: str, message_id: str) -> None:
        dropped = False

        def drop(raw: str | None) -> str | None:
            nonlocal dropped
            pending = json.loads(raw) if raw else []
            kept = [f for f in pending if f["id"] != message_id]
            dropped = len(kept) < len(pending)
            return json.dumps(kept) if dropped else None

        # Through update, not get then set: another hub may be adding a reply to the same list.
        async with self._lock(visitor_id):
            await self.deps.state.update(f"pending:{visitor_id}", drop)
        if not dropped:
            return  # not one of this visitor's replies (or confirmed already): nothing to report
        await self.deps.report_status(StatusUpdate(provider_ref=message_id, message_id=message_id,
                                                   status=DeliveryStatus.DELIVERED, occurred_at=self.deps.clock()))

    # --- outbound ------------------------------------------------------------------------------
    async def send(self, message: OutboundMessage) -> SendResult:
        if message.to.type is not IdentifierType.CHAT_VISITOR:
            raise PermanentSendError(f"chat replies go to a chat_visitor, not {message.to.type.value}",
                                     code="not_a_visitor")
        text = message.text or re.sub(r"<[^>]+>", " ", message.html or "").strip()
        if not text:
            raise PermanentSendError("nothing to send: no text", code="empty")
        visitor_id = message.to.value
        frame = {"type": "message", "id": str(message.id), "text": text[: self.capabilities.max_text_chars],
                 "at": self.deps.clock().isoformat()}
        def add(raw: str | None) -> str | None:
            pending = json.loads(raw) if raw else []
            if any(f["id"] == frame["id"] for f in pending):  # a re-dispatch after a lost lease: keep one
                return None
            if len(pending) >= self.config.max_pending:
                raise PermanentSendError(f"the visitor has {len(pending)} replies unread", code="mailbox_full")
            return json.dumps([*pending, frame])

        async with self._lock(visitor_id):
            await self.deps.state.update(f"pending:{visitor_id}", add)
        handed = await self._hand(visitor_id, frame)
        await self._tell_peers(visitor_id, frame)
        self.deps.log.info("chat reply", extra={"message_id": frame["id"], "sockets": handed})
        session = await self._session(visitor_id, touch_only=True)  # an agent's reply keeps the session open
        return SendResult(provider_ref=frame["id"], provider=PROVIDER,
                          conversation_key=message.conversation_key or session)

    async def _hand(self, visitor_id: str, frame: dict[str, Any]) -> int:
        """To the visitor's sockets open on this hub; how many took it."""
        handed = 0
        for ws in list(self._sockets.get(visitor_id, ())):
            try:
                await ws.send_str(frames.dumps(frame))
                handed += 1
            except ConnectionError:
                pass  # held: the next hello sends it
        return handed

    async def _tell_peers(self, visitor_id: str, frame: dict[str, Any]) -> None:
        """The visitor's widget may be connected to another hub behind the balancer."""
        await self.deps.tell_peers({"visitor": visitor_id, "frame": frame})

    async def from_peer(self, payload: Mapping[str, Any]) -> None:
        """A reply sent through another hub, for a visitor whose socket may be here."""
        visitor_id, frame = str(payload.get("visitor", "")), payload.get("frame")
        if not self._sockets.get(visitor_id) or not isinstance(frame, dict):
            return
        handed = await self._hand(visitor_id, frame)
        self.deps.log.info("chat reply from a peer", extra={"message_id": frame.get("id"), "sockets": handed})

    async def closing(self) -> None:
        for sockets in list(self._sockets.values()):
            for ws in list(sockets):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"hub shutting down")
