"""Commands in (issue 7): a separate pika client publishes to omnihub.commands; the hub applies each
good command once and dead-letters a bad one with its reason, on the real broker and both databases."""

from __future__ import annotations

import asyncio
import json
import uuid

import pika
import pytest
from sqlalchemy import text

from hub import keys
from hub.app import create_app
from hub.broker import dead_letters as deadletter
from tests.hub.conftest import count_rows, eventually


@pytest.fixture
def names(run_prefix):
    base = f"{run_prefix}.cmd.{uuid.uuid4().hex[:6]}"
    return {"events_exchange": f"{base}.events",
            "backoffice": {"commands_exchange": f"{base}.commands", "commands_queue": f"{base}.commands",
                           "dead_exchange": f"{base}.dead", "dead_queue": f"{base}.dead", "command_attempts": 2}}


@pytest.fixture
async def hub(aiohttp_client, make_settings, amqp_url, names):
    client = await aiohttp_client(create_app(make_settings(amqp_url=amqp_url, **names)))
    consumer = client.app[keys.COMMANDS]
    await eventually(lambda: _true(consumer.state == "consuming"), timeout=20)
    yield client
    await asyncio.to_thread(_delete, amqp_url, names)


async def _true(value):
    return value


def _delete(url, names):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    b = names["backoffice"]
    for q in (b["commands_queue"], b["dead_queue"]):
        ch.queue_delete(q)
    for x in (b["commands_exchange"], b["dead_exchange"], names["events_exchange"]):
        ch.exchange_delete(x)
    conn.close()


def _publish(url, exchange, commands):
    """A back-office system's own client: persistent messages, publisher confirms."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    for routing_key, body, message_id in commands:
        props = pika.BasicProperties(message_id=message_id, content_type="application/json", delivery_mode=2)
        ch.basic_publish(exchange, routing_key, body if isinstance(body, bytes) else json.dumps(body).encode(),
                         props, mandatory=True)
    conn.close()


async def publish(url, names, *commands):
    await asyncio.to_thread(_publish, url, names["backoffice"]["commands_exchange"], commands)


def _dead_letters(url, queue, count, timeout=15.0):
    import time

    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    got, deadline = [], time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            time.sleep(0.05)
            continue
        got.append((props, body))
    conn.close()
    return got


async def _profile(client, external_id):
    resp = await client.get("/v1/profiles", params={"identifier": f"external:{external_id}"})
    return resp.status, await resp.json()


async def test_profile_upsert_creates_then_updates_the_profile(hub, amqp_url, names):
    await publish(amqp_url, names, ("profile.upsert", {
        "external_id": "erp:C-1001", "identifiers": [{"type": "email", "value": "Kim@Example.com"}],
        "fields": {"display_name": "Kim Minji", "tier": "gold", "attributes": {"branch": "Gangnam"}}}, "m-1"))

    async def created():
        status, body = await _profile(hub, "erp:C-1001")
        return body if status == 200 else None

    profile = await eventually(created)
    assert profile["display_name"] == "Kim Minji" and profile["tier"] == "gold"
    assert profile["attributes"] == {"branch": "Gangnam"}
    assert {"type": "email", "value": "kim@example.com"} in profile["identifiers"]

    await publish(amqp_url, names, ("profile.upsert", {"external_id": "ERP:C-1001", "fields": {"tier": "vip"}}, "m-2"))

    async def updated():
        _, body = await _profile(hub, "erp:C-1001")
        return body if body.get("tier") == "vip" else None

    after = await eventually(updated)
    assert after["id"] == profile["id"] and after["display_name"] == "Kim Minji"
    async with hub.app[keys.ENGINE].connect() as conn:
        types = [r[0] for r in await conn.execute(text("SELECT type FROM outbox ORDER BY seq"))]
    assert types.count("profile.created") == 1 and types.count("command.completed") == 2
    assert "profile.updated" in types


async def test_malformed_commands_are_dead_lettered_with_their_reason_and_block_nothing(hub, amqp_url, names):
    await publish(amqp_url, names,
                  ("profile.upsert", {"external_id": "no-colon", "fields": {"tier": "x"}}, "bad-1"),
                  ("profile.upsert", b"{not json", "bad-2"),
                  ("profile.delete", {"external_id": "erp:1"}, "bad-3"),
                  ("profile.upsert", {"external_id": "erp:C-1"}, None),
                  ("profile.upsert", {"external_id": "erp:C-2002", "fields": {"display_name": "Lee"}}, "good-1"))

    async def applied():
        status, _ = await _profile(hub, "erp:C-2002")
        return status == 200

    await eventually(applied)
    dead = await asyncio.to_thread(_dead_letters, amqp_url, names["backoffice"]["dead_queue"], 4)
    by_id = {p.message_id: (deadletter.describe(p, ""), body) for p, body in dead}
    assert set(by_id) == {"bad-1", "bad-2", "bad-3", ""}
    assert by_id["bad-1"][0].reason == "invalid" and "external_id" in by_id["bad-1"][0].error
    assert by_id["bad-2"][0].reason == "invalid" and "json" in by_id["bad-2"][0].error.lower()
    assert by_id["bad-3"][0].reason == "unknown_command"
    assert by_id[""][0].reason == "missing_message_id"
    letter, body = by_id["bad-1"]
    assert letter.routing_key == "profile.upsert" and letter.exchange == names["backoffice"]["commands_exchange"]
    assert letter.queue == names["backoffice"]["commands_queue"]
    assert json.loads(body)["external_id"] == "no-colon"  # the body travels unchanged, for replay
    assert hub.app[keys.COMMANDS].dead_lettered == 4


async def test_a_duplicate_command_is_applied_once(hub, amqp_url, names):
    command = {"external_id": "erp:C-3003", "fields": {"attributes": {"visits": 1}}}
    await publish(amqp_url, names, *[("profile.upsert", command, "dup-1")] * 3,
                  ("profile.upsert", {"external_id": "erp:C-3003", "fields": {"tier": "silver"}}, "after-dup"))
    consumer = hub.app[keys.COMMANDS]
    await eventually(lambda: _true(consumer.applied + consumer.duplicates >= 4))
    assert consumer.applied == 2 and consumer.duplicates == 2
    assert await count_rows(hub.app, "command_log") == 2
    assert await count_rows(hub.app, "profiles") == 1
    async with hub.app[keys.ENGINE].connect() as conn:
        created = (await conn.execute(text("SELECT count(*) FROM outbox WHERE type = 'profile.created'"))).scalar()
    assert created == 1


async def test_interaction_import_is_ingested_once(hub, amqp_url, names):
    visit = {"interaction": {"channel": "pos", "direction": "inbound", "kind": "event", "provider": "branch",
                             "occurred_at": "2026-11-23T10:00:00+09:00",
                             "sender": {"identifiers": [{"type": "external", "value": "erp:C-4004"}]},
                             "content": {"text": "branch visit"}}}
    await publish(amqp_url, names, ("interaction.import", visit, "visit-1"), ("interaction.import", visit, "visit-1"))
    consumer = hub.app[keys.COMMANDS]
    await eventually(lambda: _true(consumer.applied + consumer.duplicates >= 2))
    assert await count_rows(hub.app, "interactions") == 1
    status, profile = await _profile(hub, "erp:C-4004")
    assert status == 200


async def test_templated_message_send_is_rendered_and_an_unknown_template_is_answered(
        aiohttp_server, aiohttp_client, make_settings, amqp_url, names, tmp_path):
    from tests.adapters.fake_twilio import OUR_NUMBER, FakeTwilio

    twilio = FakeTwilio()
    twilio.base_url = str((await aiohttp_server(twilio.app())).make_url("")).rstrip("/")
    adapters = {"sms_twilio": {"account_sid": twilio.account_sid, "auth_token": twilio.auth_token,
                               "from_number": OUR_NUMBER, "api_base": twilio.base_url}}
    templates = {"shipped": {"sms": "주문 {{ order }} 발송되었습니다", "email": {"subject": "s", "text": "t"}}}
    hub = await aiohttp_client(create_app(make_settings(amqp_url=amqp_url, adapters=adapters, templates=templates,
                                                        blob_dir=str(tmp_path / "blobs"), **names)))
    consumer = hub.app[keys.COMMANDS]
    await eventually(lambda: _true(consumer.state == "consuming"), timeout=20)
    try:
        to = {"identifier": {"type": "phone", "value": "010-1234-5678"}}
        await publish(amqp_url, names,
                      ("message.send", {"to": to, "channel": ["sms"], "template": "shipped",
                                        "variables": {"order": "A-17"}}, "send-1"),
                      ("message.send", {"to": to, "channel": ["sms"], "template": "welcome"}, "send-2"))
        await eventually(lambda: _true(len(twilio.sent) == 1 and consumer.applied == 2))
        assert [(m["To"], m["Body"]) for m in twilio.sent] == [("+821012345678", "주문 A-17 발송되었습니다")]
        async with hub.app[keys.ENGINE].connect() as conn:
            results = dict((await conn.execute(text("SELECT message_id, result FROM command_log"))).all())
        assert json.loads(results["send-2"])["error"] == "unknown_template"
        assert json.loads(results["send-1"])["queued"] is True
        assert await count_rows(hub.app, "scheduled_actions") == 0
    finally:
        await asyncio.to_thread(_delete, amqp_url, names)


async def test_message_send_with_a_body_is_sent_through_the_channel_adapter(aiohttp_server, aiohttp_client, make_settings,
                                                                            amqp_url, names, tmp_path):
    from tests.adapters.fake_twilio import OUR_NUMBER, FakeTwilio

    twilio = FakeTwilio()
    twilio.base_url = str((await aiohttp_server(twilio.app())).make_url("")).rstrip("/")
    adapters = {"sms_twilio": {"account_sid": twilio.account_sid, "auth_token": twilio.auth_token,
                               "from_number": OUR_NUMBER, "api_base": twilio.base_url}}
    hub = await aiohttp_client(create_app(make_settings(amqp_url=amqp_url, adapters=adapters,
                                                        blob_dir=str(tmp_path / "blobs"), **names)))
    consumer = hub.app[keys.COMMANDS]
    await eventually(lambda: _true(consumer.state == "consuming"), timeout=20)
    try:
        send = ("message.send", {"to": {"identifier": {"type": "phone", "value": "010-1234-5678"}},
                                 "channel": ["email", "sms"], "body": "배송이 시작되었습니다"}, "erp-send-1")
        await publish(amqp_url, names, send, send)  # a duplicate delivery sends once
        await eventually(lambda: _true(len(twilio.sent) == 1 and consumer.applied + consumer.duplicates == 2))
        await asyncio.sleep(0.3)
        assert [(m["To"], m["Body"]) for m in twilio.sent] == [("+821012345678", "배송이 시작되었습니다")]
        assert await count_rows(hub.app, "messages") == 1
    finally:
        await asyncio.to_thread(_delete, amqp_url, names)
