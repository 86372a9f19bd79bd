"""Reversible merges and erasure (issue 3)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import inspect, text

from hub import keys
from hub.app import create_app
from tests.hub.amqp_consumer import BoundQueue
from tests.hub.conftest import eventually
from tests.hub.payloads import sms, with_identifiers
from tests.hub.profiles.test_profiles_api import events
from tests.hub.profiles.test_profiles_identity import post

VOLATILE = ("version", "updated_at")


async def view(client, pid: str) -> dict:
    body = await (await client.get(f"/v1/profiles/{pid}")).json()
    return {k: v for k, v in body.items() if k not in VOLATILE}


async def timeline(client, pid: str) -> list[str]:
    return [i["id"] for i in (await (await client.get(f"/v1/profiles/{pid}/timeline")).json())["items"]]


async def test_unmerge_restores_both_profiles_timelines_and_fields(client):
    a = [await post(client, sms("010-3333-0001", name="Kim A")) for _ in range(2)]
    b = [await post(client, with_identifiers(("email", "b@example.com"), ("chat_visitor", "v-b"))) for _ in range(3)]
    pa, pb = a[0]["profile_id"], b[0]["profile_id"]
    await client.patch(f"/v1/profiles/{pa}", json={"tier": "gold", "segments": ["s-a"], "attributes": {"x": 1}})
    await client.patch(f"/v1/profiles/{pb}", json={"given_name": "Bee", "locale": "ko-KR", "segments": ["s-b"],
                                                   "attributes": {"x": 9, "y": 2}, "owner": "agent-2"})
    before = {p: (await view(client, p), await timeline(client, p)) for p in (pa, pb)}

    resp = await client.post(f"/v1/profiles/{pb}/merge", json={"other": pa})
    assert resp.status == 200, await resp.text()
    merged = await resp.json()
    assert (merged["survivor_id"], merged["merged_id"]) == (pa, pb)
    survivor = await view(client, pa)
    assert survivor["given_name"] == "Bee" and survivor["tier"] == "gold" and survivor["owner"] == "agent-2"
    assert survivor["segments"] == ["s-a", "s-b"] and survivor["attributes"] == {"x": 1, "y": 2}
    assert len(survivor["identifiers"]) == 3 and len(await timeline(client, pa)) == 5

    resp = await client.post(f"/v1/profiles/{pb}/unmerge")
    assert resp.status == 200, await resp.text()
    assert {p: (await view(client, p), await timeline(client, p)) for p in (pa, pb)} == before
    unmerged = (await events(client.app, "profile.unmerged"))[-1]
    assert unmerged["data"]["merged_id"] == pb and sorted(unmerged["data"]["identifiers"]) == [
        "chat_visitor:v-b", "email:b@example.com"]
    # Nothing left to undo.
    assert (await client.post(f"/v1/profiles/{pb}/unmerge")).status == 409


async def test_an_automatic_merge_is_undone_from_the_audit(client):
    a = await post(client, sms("010-3333-0002"))
    b = await post(client, with_identifiers(("email", "c@example.com")))
    await client.patch(f"/v1/profiles/{b['profile_id']}", json={"timezone": "Asia/Seoul"})
    link = await post(client, with_identifiers(("phone", "010-3333-0002"), ("email", "c@example.com")))
    assert link["profile_id"] == a["profile_id"]
    assert (await view(client, a["profile_id"]))["timezone"] == "Asia/Seoul"
    resp = await client.post(f"/v1/profiles/{a['profile_id']}/unmerge")  # by the survivor's id
    assert resp.status == 200, await resp.text()
    assert (await view(client, a["profile_id"]))["timezone"] is None
    restored = await view(client, b["profile_id"])
    assert restored["timezone"] == "Asia/Seoul" and restored["identifiers"] == [
        {"type": "email", "value": "c@example.com"}]
    assert await timeline(client, b["profile_id"]) == [b["id"]]


PII = ("Park Jiwoo", "park.jiwoo@example.com", "+821077778888", "1077778888", "7777-8888", "비밀 주문 내용",
       "secret-subject", "passport.pdf")


async def all_text(app) -> str:
    """Every row of every table, as text."""
    async with app[keys.ENGINE].connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        chunks = []
        for table in tables:
            rows = (await conn.execute(text(f'SELECT * FROM "{table}"'))).all()
            chunks.extend(json.dumps([str(v) for v in row], ensure_ascii=False) for row in rows)
    return "\n".join(chunks)


@pytest.mark.rabbitmq
async def test_erasure_removes_pii_keeps_aggregates_and_publishes_profile_erased(
        aiohttp_client, make_settings, amqp_url, run_prefix, request):
    exchange = f"{run_prefix}.events.{request.node.name[-40:]}"
    queue = BoundQueue(amqp_url, exchange, "profile.erased", run_prefix)
    queue.declare()
    try:
        client = await aiohttp_client(create_app(make_settings(amqp_url=amqp_url, events_exchange=exchange)))
        first = await post(client, sms("010-7777-8888", name="Park Jiwoo", text="비밀 주문 내용"))
        pid = first["profile_id"]
        await post(client, {**with_identifiers(("email", "park.jiwoo@example.com"), ("phone", "010-7777-8888"),
                                               channel="email"),
                            "subject": "secret-subject",
                            "attachments": [{"filename": "passport.pdf", "size": 3, "sha256": "a" * 64}]})
        await post(client, {"channel": "pos", "direction": "inbound", "kind": "transaction", "provider": "pos",
                            "provider_ref": "R-77", "occurred_at": "2026-11-20T12:00:00+09:00",
                            "sender": {"identifiers": [{"type": "phone", "value": "010-7777-8888"}]},
                            "transaction": {"total": "5000", "currency": "KRW"}})
        await client.patch(f"/v1/profiles/{pid}", json={"given_name": "Jiwoo", "segments": ["vip-list"]})
        dump = await all_text(client.app)
        assert all(p in dump for p in PII[:3])

        resp = await client.delete(f"/v1/profiles/{pid}")
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["interactions_scrubbed"] == 3
        dump = await all_text(client.app)
        assert [p for p in PII if p in dump] == []
        body = await (await client.get(f"/v1/profiles/{pid}")).json()
        assert body["erased_at"] and body["display_name"] is None and body["identifiers"] == []
        assert body["segments"] == ["vip-list"] and body["rfm"]["frequency"] == 1  # aggregates kept
        assert len(await timeline(client, pid)) == 3  # the interactions stay, without their content
        got = await queue.adrain(1)
        assert got and got[0][1]["type"] == "profile.erased" and got[0][1]["subject"] == pid
        # The same number starts a fresh profile.
        again = await post(client, sms("010-7777-8888"))
        assert again["profile_id"] != pid
        assert (await client.patch(f"/v1/profiles/{pid}", json={"tier": "x"})).status == 410
        await eventually(lambda: _published(client.app))
    finally:
        queue.delete()


async def _published(app) -> bool:
    async with app[keys.ENGINE].connect() as conn:
        return (await conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))).scalar_one() == 0
