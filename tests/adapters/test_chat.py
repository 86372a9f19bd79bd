"""Web chat through a real hub (SQLite and PostgreSQL): the visitor's websocket, their signed id,
the allowed origins, ingest committed before the ack, and an agent's reply reaching the widget:
at once when it is connected, at its next hello when it is not, even after the hub restarts."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import aiohttp
import pytest
from sqlalchemy import select

from adapters import chat_frames
from hub import keys
from hub.app import create_app
from hub.storage.models import interactions
from tests.hub.conftest import count_rows, eventually

ORIGIN = "https://shop.example.com"
SECRET = "test-chat-secret-0123456789"
WS = "/v1/chat/ws"


@pytest.fixture
def chat_settings(make_settings, tmp_path):
    def make(**chat):
        return make_settings(blob_dir=str(tmp_path / "blobs"), adapters={"chat": {
            "secret": SECRET, "allowed_origins": [ORIGIN, "http://127.0.0.1:8000"], "hello_timeout_s": 5,
            **chat}})
    return make


@pytest.fixture
async def hub(aiohttp_client, chat_settings):
    return await aiohttp_client(create_app(chat_settings()))


async def receive(ws, timeout: float = 10.0) -> dict:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def connect(hub, visitor: str | None = None, **hello) -> tuple[aiohttp.ClientWebSocketResponse, dict]:
    ws = await hub.ws_connect(WS, headers={"Origin": ORIGIN})
    await ws.send_json({"type": "hello", "visitor": visitor, **hello})
    welcome = await receive(ws)
    assert welcome["type"] == "welcome", welcome
    return ws, welcome


async def say(ws, text: str, client_id: str = "m1") -> dict:
    await ws.send_json({"type": "message", "id": client_id, "text": text})
    return await receive(ws)


async def reply(hub, interaction_id: str, text: str) -> dict:
    resp = await hub.post("/v1/messages", json={"in_reply_to": interaction_id, "text": text})
    assert resp.status == 202, await resp.text()
    return await resp.json()


async def message_state(hub, message_id: str, *wanted: str) -> dict:
    async def check():
        m = await (await hub.get(f"/v1/messages/{message_id}")).json()
        return m if m["state"] in wanted else None
    return await eventually(check, timeout=10)


async def profile_of(hub, ident: str) -> dict:
    resp = await hub.get(f"/v1/profiles?identifier={quote(ident)}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_message_is_committed_before_its_ack_and_a_resend_is_one_interaction(hub):
    ws, welcome = await connect(hub)
    visitor_id = welcome["visitor_id"]
    assert chat_frames.verify(welcome["visitor"], SECRET.encode()) == visitor_id
    ack = await say(ws, "Do you ship to Busan?", "a1")
    assert ack["type"] == "ack" and ack["id"] == "a1"
    # The ack carries the id of a row already committed: read it at once, from another connection.
    async with hub.app[keys.ENGINE].connect() as conn:
        row = (await conn.execute(select(interactions.c.channel, interactions.c.provider_ref,
                                         interactions.c.conversation_key)
                                  .where(interactions.c.id == uuid.UUID(ack["interaction_id"])))).one()
    assert row.channel == "chat" and row.provider_ref == f"{visitor_id}:a1"
    assert row.conversation_key.startswith(f"chat:{visitor_id}:")
    again = await say(ws, "Do you ship to Busan?", "a1")  # the widget resends after a lost ack
    assert again["interaction_id"] == ack["interaction_id"]
    second = await say(ws, "And to Jeju?", "a2")
    assert second["interaction_id"] != ack["interaction_id"]
    assert await count_rows(hub.app, "interactions") == 2
    profile = await profile_of(hub, f"chat_visitor:{visitor_id}")
    assert profile["identifiers"] == [{"type": "chat_visitor", "value": visitor_id}]
    await ws.close()


async def test_with_the_pipeline_stopped_nothing_is_acked_and_the_resend_is_taken(hub):
    ws, _ = await connect(hub)
    pipeline = hub.app[keys.PIPELINE]
    await pipeline.stop()
    try:
        refused = await say(ws, "anyone there?", "r1")
        assert (refused["type"], refused["id"], refused["retry"]) == ("error", "r1", True)
        assert await count_rows(hub.app, "interactions") == 0
    finally:
        await pipeline.start()
    ack = await say(ws, "anyone there?", "r1")
    assert ack["type"] == "ack"
    assert await count_rows(hub.app, "interactions") == 1
    await ws.close()


async def test_the_same_signed_id_is_the_same_visitor_and_a_forged_one_is_refused(hub):
    ws, welcome = await connect(hub)
    await say(ws, "first visit")
    await ws.close()
    ws, again = await connect(hub, welcome["visitor"])
    assert again["visitor_id"] == welcome["visitor_id"]
    await ws.close()

    for forged in (welcome["visitor"][:-2] + "xx",                       # the id, a made-up signature
                   chat_frames.sign("v" + "A" * 22, b"another-secret-entirely"),  # signed elsewhere
                   welcome["visitor_id"]):                                # no signature at all
        ws = await hub.ws_connect(WS, headers={"Origin": ORIGIN})
        await ws.send_json({"type": "hello", "visitor": forged})
        error = await receive(ws)
        assert (error["type"], error["field"]) == ("error", "visitor")
        closed = await ws.receive(timeout=5)
        assert closed.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 4403
    assert await count_rows(hub.app, "interactions") == 1


async def test_a_disallowed_or_missing_origin_is_refused_before_the_upgrade(hub):
    for headers in ({"Origin": "https://evil.example.net"}, {"Origin": "https://shop.example.com.evil.net"}, {}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await hub.ws_connect(WS, headers=headers)
        assert refused.value.status == 403
    ws = await hub.ws_connect(WS, headers={"Origin": "HTTPS://Shop.Example.com"})  # origins are case-blind
    await ws.close()


async def test_bad_frames_get_an_error_naming_the_field_and_the_socket_stays(hub):
    ws = await hub.ws_connect(WS, headers={"Origin": ORIGIN})
    await ws.send_json({"type": "message", "id": "x", "text": "hi"})  # before hello
    assert (await receive(ws))["field"] == "type"
    await ws.send_json({"type": "hello", "email": "not an address"})
    assert (await receive(ws))["field"] == "email"
    await ws.send_json({"type": "hello"})
    assert (await receive(ws))["type"] == "welcome"
    for frame, field in ((b"\x00binary", "frame"), ("{not json", "frame"), ("[1, 2]", "frame"),
                         ({"type": "shout"}, "type"), ({"type": "message", "text": "hi"}, "id"),
                         ({"type": "message", "id": "bad id!", "text": "hi"}, "id"),
                         ({"type": "message", "id": "m", "text": "   "}, "text"),
                         ({"type": "message", "id": "m", "text": "x" * 4001}, "text"),
                         ({"type": "message", "id": "m", "text": "hi", "extra": 1}, "extra"),
                         ({"type": "delivered", "id": "not-a-uuid"}, "id"),
                         ({"type": "hello"}, "type")):
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        elif isinstance(frame, str):
            await ws.send_str(frame)
        else:
            await ws.send_json(frame)
        error = await receive(ws)
        assert (error["type"], error["field"]) == ("error", field), (frame, error)
    assert (await say(ws, "still here"))["type"] == "ack"
    await ws.send_str(json.dumps({"type": "message", "id": "big", "text": "x" * 20000}))  # past max_frame_bytes
    closed = await ws.receive(timeout=5)
    assert closed.type is aiohttp.WSMsgType.CLOSE and ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_name_and_email_join_the_visitor_to_their_profile(hub):
    resp = await hub.post("/v1/interactions", json={
        "channel": "email", "direction": "inbound", "kind": "message", "provider": "helpdesk",
        "provider_ref": "<1@example.com>", "occurred_at": "2026-01-05T10:00:00+09:00",
        "sender": {"identifiers": [{"type": "email", "value": "minji.kim@example.com"}]},
        "content": {"text": "an earlier email"}})
    assert resp.status == 201
    earlier = (await resp.json())["profile_id"]
    ws, welcome = await connect(hub, name="Kim Minji", email="Minji.Kim@Example.com")
    ack = await say(ws, "about my order")
    profile = await profile_of(hub, f"chat_visitor:{welcome['visitor_id']}")
    assert profile["id"] == earlier
    got = await (await hub.get(f"/v1/interactions/{ack['interaction_id']}")).json()
    assert got["sender"]["display_name"] == "Kim Minji"
    await ws.close()


async def test_an_agent_reply_reaches_the_open_socket_and_the_widgets_ack_delivers_it(hub):
    ws, welcome = await connect(hub)
    ack = await say(ws, "Is the blue one in stock?")
    message = await reply(hub, ack["interaction_id"], "Yes, 3 left.")
    assert message["to"] == {"type": "chat_visitor", "value": welcome["visitor_id"]}
    frame = await receive(ws)
    assert (frame["type"], frame["id"], frame["text"]) == ("message", message["id"], "Yes, 3 left.")
    sent = await message_state(hub, message["id"], "sent", "delivered")
    await ws.send_json({"type": "delivered", "id": frame["id"]})
    done = await message_state(hub, message["id"], "delivered")
    assert done["conversation_key"] == sent["conversation_key"]
    # The reply is on the timeline in the visitor's session, with the question.
    items = (await (await hub.get(f"/v1/profiles/{done['profile_id']}/timeline")).json())["items"]
    assert {i["conversation_key"] for i in items} == {done["conversation_key"]}
    assert len(items) == 2
    await ws.close()


async def test_another_visitor_cannot_confirm_a_reply_it_was_not_sent(hub):
    ws, _ = await connect(hub)
    ack = await say(ws, "hello")
    other, _ = await connect(hub)
    await ws.close()
    message = await reply(hub, ack["interaction_id"], "for the first visitor only")
    await message_state(hub, message["id"], "sent")
    await other.send_json({"type": "delivered", "id": message["id"]})
    await say(other, "sync")  # once this is acked, the delivered frame before it was handled
    assert (await (await hub.get(f"/v1/messages/{message['id']}")).json())["state"] == "sent"
    await other.close()


async def test_a_reply_while_the_visitor_is_away_arrives_at_reconnect_even_after_a_restart(
        aiohttp_client, chat_settings):
    settings = chat_settings()
    hub = await aiohttp_client(create_app(settings))
    ws, welcome = await connect(hub)
    ack = await say(ws, "I'll check back later")
    await ws.close()
    message = await reply(hub, ack["interaction_id"], "Your refund went out today.")
    await message_state(hub, message["id"], "sent")  # held for the visitor
    other, _ = await connect(hub)  # another visitor is online when the hub stops: told, not waited for
    await hub.app.shutdown()  # what the server runs first when it stops
    assert (await other.receive(timeout=5)).type is aiohttp.WSMsgType.CLOSE
    assert other.close_code == aiohttp.WSCloseCode.GOING_AWAY
    await hub.close()  # the hub restarts on the same database

    hub = await aiohttp_client(create_app(settings))
    ws, again = await connect(hub, welcome["visitor"])
    assert again["visitor_id"] == welcome["visitor_id"]
    frame = await receive(ws)
    assert (frame["type"], frame["id"], frame["text"]) == ("message", message["id"], "Your refund went out today.")
    await ws.send_json({"type": "delivered", "id": frame["id"]})
    await message_state(hub, message["id"], "delivered")
    await ws.close()
    ws, _ = await connect(hub, welcome["visitor"])  # confirmed: not sent again
    ack = await say(ws, "thanks!", "t2")
    assert ack["type"] == "ack"
    await ws.close()


async def test_every_open_tab_of_the_visitor_gets_the_reply(hub):
    first, welcome = await connect(hub)
    second, _ = await connect(hub, welcome["visitor"])
    ack = await say(first, "two tabs open")
    message = await reply(hub, ack["interaction_id"], "hello both")
    assert (await receive(first))["id"] == message["id"]
    assert (await receive(second))["id"] == message["id"]
    await first.close()
    await second.close()


@pytest.mark.clock
async def test_a_new_session_after_the_idle_time_starts_a_new_conversation(hub):
    adapter = hub.app[keys.ADAPTERS]["chat"]
    now = [datetime.now(UTC)]
    adapter.deps.clock = lambda: now[0]  # the adapter's clock, driven by the test
    ws, _ = await connect(hub)

    async def conversation(text: str, client_id: str) -> str:
        ack = await say(ws, text, client_id)
        return (await (await hub.get(f"/v1/interactions/{ack['interaction_id']}")).json())["conversation_key"]

    first = await conversation("one", "s1")
    now[0] += timedelta(minutes=29)
    assert await conversation("two", "s2") == first
    now[0] += timedelta(minutes=31)  # past session_idle_s (30 minutes) since the last message
    assert await conversation("three", "s3") != first
    await ws.close()


async def test_the_widget_script_is_served_and_the_secret_is_masked(hub, chat_settings):
    resp = await hub.get("/chat/widget.js")
    assert resp.status == 200 and resp.content_type == "text/javascript"
    assert "/v1/chat/ws" in await resp.text()
    masked = chat_settings().masked()["adapters"]["chat"]
    assert masked["secret"] == "***" and masked["allowed_origins"] == [ORIGIN, "http://127.0.0.1:8000"]
    plain = await hub.get(WS, headers={"Origin": ORIGIN})  # not an upgrade
    assert plain.status == 426
