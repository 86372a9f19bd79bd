"""POST /v1/interactions on SQLite and PostgreSQL: dedupe, identity, and refusing bad input."""

from __future__ import annotations

import json

from hub import keys
from tests.hub.conftest import count_rows
from tests.hub.payloads import sms, with_identifiers


async def test_new_interaction_is_created_and_a_repeat_returns_the_same_id(client):
    payload = sms(ref="SM-dup-1")
    first = await client.post("/v1/interactions", json=payload)
    assert first.status == 201
    created = await first.json()
    repeat = await client.post("/v1/interactions", json=payload)
    assert repeat.status == 200
    again = await repeat.json()
    assert again == {**created, "created": False}
    assert await count_rows(client.app, "interactions") == 1
    # One interaction.received.sms and one profile.created: the repeat added no event.
    assert await count_rows(client.app, "outbox") == 2


async def test_stored_interaction_has_hub_fields_and_normalized_identifiers(client):
    resp = await client.post("/v1/interactions", json=sms("010-1234-5678", ref="SM-get"))
    body = await resp.json()
    assert resp.headers["Location"] == f"/v1/interactions/{body['id']}"
    stored = await (await client.get(f"/v1/interactions/{body['id']}")).json()
    assert stored["id"] == body["id"]
    assert stored["profile_id"] == body["profile_id"]
    assert stored["received_at"]
    assert stored["sender"]["identifiers"] == [{"type": "phone", "value": "+821012345678"}]
    assert stored["content"]["text"] == "배송지 변경 부탁드립니다"


async def test_same_phone_in_two_formats_maps_to_one_profile(client):
    local = await (await client.post("/v1/interactions", json=sms("010-1234-5678"))).json()
    intl = await (await client.post("/v1/interactions", json=sms("+82 10-1234-5678", name=None))).json()
    assert local["id"] != intl["id"]
    assert local["profile_id"] == intl["profile_id"]
    other = await (await client.post("/v1/interactions", json=sms("+1 (202) 555-0143"))).json()
    assert other["profile_id"] != local["profile_id"]
    assert await count_rows(client.app, "profiles") == 2


async def test_email_in_different_case_maps_to_one_profile(client):
    a = await (await client.post("/v1/interactions", json=with_identifiers(("email", "Kim.Minji@Example.COM"),
                                                                          channel="email"))).json()
    b = await (await client.post("/v1/interactions", json=with_identifiers(("email", "kim.minji@example.com"),
                                                                          channel="email"))).json()
    assert a["profile_id"] == b["profile_id"]


async def test_identifiers_of_two_profiles_merge_into_the_oldest(client):
    chat = await (await client.post("/v1/interactions", json=with_identifiers(("chat_visitor", "v-123")))).json()
    mail = await (await client.post("/v1/interactions", json=with_identifiers(("email", "a@b.com"),
                                                                             channel="email"))).json()
    assert chat["profile_id"] != mail["profile_id"]
    both = await (await client.post("/v1/interactions", json=with_identifiers(
        ("chat_visitor", "v-123"), ("email", "a@b.com")))).json()
    assert both["profile_id"] == chat["profile_id"]  # the chat profile is older
    moved = await (await client.get(f"/v1/interactions/{mail['id']}")).json()
    assert moved["profile_id"] == chat["profile_id"]
    async with client.app[keys.ENGINE].connect() as conn:
        from sqlalchemy import text

        types = [r[0] for r in await conn.execute(text("SELECT type FROM outbox ORDER BY seq"))]
        merged = (await conn.execute(text("SELECT merged_into FROM profiles WHERE merged_into IS NOT NULL"))).all()
    assert "profile.merged" in types
    assert len(merged) == 1


async def _assert_nothing_written(client):
    assert await count_rows(client.app, "interactions") == 0
    assert await count_rows(client.app, "outbox") == 0
    assert await count_rows(client.app, "profiles") == 0


async def test_invalid_json_is_400_naming_the_body(client):
    resp = await client.post("/v1/interactions", data=b'{"channel": "sms",', headers={"Content-Type": "application/json"})
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == "invalid_json"
    assert body["fields"][0]["field"] == "body"
    await _assert_nothing_written(client)


async def test_wrong_types_and_unknown_channel_are_422_naming_each_field(client):
    payload = sms()
    payload["channel"] = "pigeon"
    payload["priority"] = "high"
    payload["sender"]["identifiers"][0]["value"] = "not a number"
    payload["occurred_at"] = "2026-11-23T10:00:00"  # no timezone
    resp = await client.post("/v1/interactions", json=payload)
    assert resp.status == 422
    fields = {f["field"]: f["message"] for f in (await resp.json())["fields"]}
    assert "unknown channel 'pigeon'" in fields["channel"]
    assert "priority" in fields
    assert "sender.identifiers.0.value" in fields
    assert "occurred_at" in fields
    await _assert_nothing_written(client)


async def test_a_number_for_a_time_is_422_naming_the_field_not_1970(client):
    for value in (5, 1764000000, 1764000000000.0, "1764000000"):
        resp = await client.post("/v1/interactions", json={**sms(), "occurred_at": value})
        assert resp.status == 422, value
        [field] = (await resp.json())["fields"]
        assert field["field"] == "occurred_at" and "RFC 3339" in field["message"], value
    await _assert_nothing_written(client)


async def test_unknown_key_is_refused_not_dropped(client):
    payload = sms()
    payload["contnet"] = {"text": "typo"}
    resp = await client.post("/v1/interactions", json=payload)
    assert resp.status == 422
    assert [f["field"] for f in (await resp.json())["fields"]] == ["contnet"]


async def test_oversized_body_is_413_and_nothing_is_written(aiohttp_client, make_settings):
    from hub.app import create_app

    client = await aiohttp_client(create_app(make_settings(max_body_bytes=4096)))
    resp = await client.post("/v1/interactions", json=sms(text="x" * 10_000))
    assert resp.status == 413
    body = await resp.json()
    assert body["error"] == "body_too_large"
    assert body["fields"][0]["field"] == "body"
    await _assert_nothing_written(client)


async def test_non_object_json_is_422(client):
    resp = await client.post("/v1/interactions", data=json.dumps([1, 2, 3]))
    assert resp.status == 422
    await _assert_nothing_written(client)


async def test_schema_endpoint_serves_the_interaction_schema(client):
    resp = await client.get("/v1/schema/interaction")
    schema = await resp.json()
    assert resp.status == 200
    assert {"channel", "direction", "provider", "occurred_at"} <= set(schema["required"])
    assert (await client.get("/v1/schema/nope")).status == 404


async def test_health_readiness_and_metrics(client):
    assert (await (await client.get("/healthz")).json())["status"] == "alive"
    await client.post("/v1/interactions", json=sms())
    ready = await (await client.get("/readyz")).json()
    assert ready["database"]["status"] == "up"
    assert ready["broker"]["state"] == "disabled"  # no amqp_url: events wait
    assert ready["outbox"]["pending"] == 2
    metrics = await (await client.get("/metrics")).text()
    assert 'omnihub_ingest_total{channel="sms",outcome="created"} 1.0' in metrics
    assert "omnihub_outbox_pending 2.0" in metrics
