"""The profile API: single view, update with optimistic concurrency, timeline paging, RFM from POS."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import text

from hub import keys
from hub.app import create_app
from hub.storage.batch import load_profiles
from tests.hub.payloads import sms, with_identifiers
from tests.hub.profiles.test_profiles_identity import post


async def events(app, event_type: str) -> list[dict]:
    async with app[keys.ENGINE].connect() as conn:
        rows = await conn.execute(text("SELECT body FROM outbox WHERE type = :t ORDER BY seq"), {"t": event_type})
        return [json.loads(b) for (b,) in rows]


@pytest.mark.clock
async def test_patch_updates_fields_emits_profile_updated_and_refuses_a_stale_etag(client):
    pid = (await post(client, sms("010-2222-3333")))["profile_id"]
    resp = await client.get(f"/v1/profiles/{pid}")
    etag = resp.headers["ETag"]
    body = await resp.json()
    assert body["display_name"] == "Kim Minji" and body["version"] == 1
    change = {"given_name": "Minji", "family_name": "Kim", "locale": "ko-KR", "timezone": "Asia/Seoul",
              "birthday": "1990-04-01", "owner": "agent-7", "tier": "gold", "segments": ["newsletter"],
              "consents": {"sms:marketing": {"granted": True, "source": "web"}}, "preferred_channels": ["sms"],
              "attributes": {"shoe_size": 240}}
    resp = await client.patch(f"/v1/profiles/{pid}", json=change, headers={"If-Match": etag})
    assert resp.status == 200, await resp.text()
    updated = await resp.json()
    assert resp.headers["ETag"] == '"2"' and updated["version"] == 2
    assert {k: updated[k] for k in change} == {**change, "consents": {"sms:marketing": {
        "granted": True, "at": None, "source": "web"}}}
    # The stale ETag is refused, naming the header; nothing changes.
    resp = await client.patch(f"/v1/profiles/{pid}", json={"tier": "vip"}, headers={"If-Match": etag})
    assert resp.status == 412
    assert (await resp.json())["fields"][0]["field"] == "If-Match"
    assert (await (await client.get(f"/v1/profiles/{pid}")).json())["tier"] == "gold"
    # Key-wise merge for attributes and consents; null removes a key.
    resp = await client.patch(f"/v1/profiles/{pid}", json={"attributes": {"shoe_size": None, "vip_note": "x"}})
    assert (await resp.json())["attributes"] == {"vip_note": "x"}
    updates = await events(client.app, "profile.updated")
    assert [e["data"]["changed"].keys() >= {"given_name"} for e in updates][:1] == [True]
    assert updates[-1]["data"]["changed"] == {"attributes": {"vip_note": "x"}} and updates[-1]["subject"] == pid
    # A no-op patch changes nothing and emits nothing.
    resp = await client.patch(f"/v1/profiles/{pid}", json={"tier": "gold"})
    assert resp.headers["ETag"] == '"3"'
    assert len(await events(client.app, "profile.updated")) == 2
    # The routing step reads owner/tier from what the writer loads.
    async with client.app[keys.ENGINE].connect() as conn:
        loaded = (await conn.run_sync(load_profiles, [uuid.UUID(pid)]))[uuid.UUID(pid)]
    assert (loaded["owner"], loaded["tier"], loaded["segments"]) == ("agent-7", "gold", ["newsletter"])


async def test_bad_input_is_answered_naming_the_field(client):
    pid = (await post(client, sms("010-2222-4444")))["profile_id"]
    unknown = "0190d5a0-0000-7000-8000-000000000000"
    for url in (f"/v1/profiles/{unknown}", "/v1/profiles/not-a-uuid", f"/v1/profiles/{unknown}/timeline"):
        resp = await client.get(url)
        assert resp.status == 404, url
        assert (await resp.json())["error"] == "not_found"
    resp = await client.get("/v1/profiles", params={"identifier": "fax-number:123"})
    assert resp.status == 422 and (await resp.json())["fields"][0]["field"] == "identifier"
    resp = await client.get("/v1/profiles", params={"identifier": "email:someone@example.com"})
    assert resp.status == 404
    resp = await client.patch(f"/v1/profiles/{pid}", json={"timezone": "Mars/Olympus", "frequency": 3})
    assert resp.status == 422
    assert {f["field"] for f in (await resp.json())["fields"]} == {"timezone", "frequency"}
    resp = await client.patch(f"/v1/profiles/{pid}", json={"consents": {"marketing": {"granted": True}}})
    assert (await resp.json())["fields"][0]["field"] == "consents"
    resp = await client.get(f"/v1/profiles/{pid}/timeline", params={"cursor": "garbage"})
    assert resp.status == 422 and (await resp.json())["fields"][0]["field"] == "cursor"
    resp = await client.post(f"/v1/profiles/{pid}/merge", json={})
    assert resp.status == 422 and (await resp.json())["fields"][0]["field"] == "other"


async def test_timeline_is_newest_first_across_channels_with_cursor_paging(client):
    ids = []
    for day in range(1, 8):
        payload = sms("010-5000-1234", occurred_at=f"2026-11-{day:02d}T10:00:00+09:00") if day % 2 else {
            **with_identifiers(("phone", "010-5000-1234"), channel="chat"),
            "occurred_at": f"2026-11-{day:02d}T10:00:00+09:00"}
        ids.append(await post(client, payload))
    pid = ids[0]["profile_id"]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get(f"/v1/profiles/{pid}/timeline", params=params)).json()
        seen.extend(page["items"])
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 3
    assert [i["id"] for i in seen] == [r["id"] for r in reversed(ids)]
    assert {i["channel"] for i in seen} == {"sms", "chat"}


def pos(loyalty: str, total: str, ref: str, at: str = "2026-11-20T12:00:00+09:00") -> dict:
    return {"channel": "pos", "direction": "inbound", "kind": "transaction", "provider": "store-pos",
            "provider_ref": ref, "occurred_at": at,
            "transaction": {"store": "S1", "receipt": ref, "total": total, "currency": "KRW", "loyalty_id": loyalty,
                            "items": [{"sku": "A1", "qty": 1, "unit_price": total}]}}


@pytest.mark.clock
async def test_pos_transactions_update_rfm_value_score_and_vip_tier(aiohttp_client, make_settings):
    settings = make_settings(value_score={"tiers": {"vip": 60, "regular": 1}, "monetary_cap": 100000,
                                          "frequency_cap": 3})
    client = await aiohttp_client(create_app(settings))
    first = await post(client, pos("LOY-1", "30000", "R-1"))
    pid = first["profile_id"]
    body = await (await client.get(f"/v1/profiles/{pid}")).json()
    assert body["rfm"]["frequency"] == 1 and body["rfm"]["monetary"] == 30000
    assert body["tier"] == "regular"
    assert body["identifiers"] == [{"type": "loyalty_id", "value": "LOY-1"}]
    # Concurrent purchases share a group commit: one aggregated update per profile and batch.
    await asyncio.gather(post(client, pos("LOY-1", "50000", "R-2", "2026-11-22T12:00:00+09:00")),
                         post(client, pos("LOY-1", "40000", "R-3", "2026-11-21T12:00:00+09:00")))
    body = await (await client.get(f"/v1/profiles/{pid}")).json()
    assert body["rfm"]["frequency"] == 3 and body["rfm"]["monetary"] == 120000
    assert body["rfm"]["last_purchase_at"].startswith("2026-11-22T03:00:00")
    assert body["value_score"] >= 60 and body["tier"] == "vip"
    updates = [e["data"] for e in await events(client.app, "profile.updated") if e["data"].get("source") == "pos"]
    assert [u["changed"].get("tier") for u in updates if "tier" in u["changed"]] == ["regular", "vip"]
    # A hand-set tier the config does not know is left alone.
    await client.patch(f"/v1/profiles/{pid}", json={"tier": "staff"})
    await post(client, pos("LOY-1", "1000", "R-4"))
    assert (await (await client.get(f"/v1/profiles/{pid}")).json())["tier"] == "staff"
