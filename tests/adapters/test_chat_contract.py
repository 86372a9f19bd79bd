"""The adapter contract for web chat: deliveries go through the real websocket, with the visitor's
id signed by the hub, presented bare (unsigned), or signed with another key (wrong)."""

from __future__ import annotations

import json

import aiohttp
import pytest

from adapters import chat_frames
from hub.app import create_app
from tests.adapters.contract import AdapterContract, Auth, Delivery, outbound_message

ORIGIN = "https://shop.example.com"
SECRET = "contract-chat-secret-0123456789"
VISITOR = "vK3JbWm2Zq8x1c0aTq9yLwA"


class TestChatContract(AdapterContract):
    adapter_name = "chat"

    @pytest.fixture
    async def hub(self, aiohttp_client, make_settings, tmp_path):
        settings = make_settings(blob_dir=str(tmp_path / "blobs"),
                                 adapters={"chat": {"secret": SECRET, "allowed_origins": [ORIGIN]}})
        return await aiohttp_client(create_app(settings))

    def samples(self):
        key = f"chat:{VISITOR}:20260105T100000"
        return [
            {"visitor_id": VISITOR, "id": "m1", "text": "배송 언제 되나요?", "conversation_key": key},
            {"visitor_id": VISITOR, "id": "m2", "text": "Is the blue one in stock?", "conversation_key": key,
             "name": "Kim Minji", "email": "Minji.Kim@example.com", "origin": ORIGIN},
            {"visitor_id": "vOther_visitor-1", "id": "m1", "text": "hi", "conversation_key": "chat:vOther_visitor-1:x"},
        ]

    def bad_payloads(self):
        key = f"chat:{VISITOR}:x"
        return [
            ({"visitor_id": VISITOR, "id": "m1", "text": "", "conversation_key": key}, "text"),
            ({"visitor_id": VISITOR, "id": "m1", "text": "hi", "conversation_key": key, "email": "nope"}, "email"),
            ({"visitor_id": "not a token!", "id": "m1", "text": "hi", "conversation_key": key}, "visitor"),
            ({"visitor_id": VISITOR, "text": "hi", "conversation_key": key}, "id"),
        ]

    async def deliver(self, hub, raw, auth: Auth) -> Delivery:
        token = {Auth.SIGNED: chat_frames.sign(raw["visitor_id"], SECRET.encode()),
                 Auth.UNSIGNED: raw["visitor_id"],
                 Auth.WRONG: chat_frames.sign(raw["visitor_id"], b"not-the-hub-secret")}[auth]
        ws = await hub.ws_connect("/v1/chat/ws", headers={"Origin": ORIGIN})
        try:
            await ws.send_json({"type": "hello", "visitor": token, "email": raw.get("email"), "name": raw.get("name")})
            answer = json.loads((await ws.receive(timeout=10)).data)
            if answer["type"] != "welcome":
                return Delivery(accepted=False, status=f"error:{answer.get('field')}", detail=answer)
            await ws.send_json({"type": "message", "id": raw["id"], "text": raw["text"]})
            msg = await ws.receive(timeout=10)
            answer = json.loads(msg.data) if msg.type is aiohttp.WSMsgType.TEXT else {"type": str(msg.type)}
            return Delivery(accepted=answer["type"] == "ack", status=answer["type"], detail=answer)
        finally:
            await ws.close()

    async def outbound(self, hub):
        return outbound_message("chat", {"type": "chat_visitor", "value": VISITOR}, text="Yes, 3 left.")
