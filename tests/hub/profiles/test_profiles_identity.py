"""Identity resolution into one shared profile (issue 3), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from hub import keys
from hub.app import create_app
from hub.profiles.identity import IdentityPlan, ProfilePolicy
from hub.settings import MergePolicySettings
from tests.hub.conftest import count_rows
from tests.hub.payloads import sms, with_identifiers


async def post(client, payload) -> dict:
    resp = await client.post("/v1/interactions", json=payload)
    assert resp.status in (200, 201), await resp.text()
    return await resp.json()


async def test_korean_local_international_and_us_formats_resolve_to_one_profile(client):
    kr = [await post(client, sms(p)) for p in ("010-1234-5678", "+82 10-1234-5678", "01012345678", "+821012345678")]
    us = [await post(client, sms(p)) for p in ("+1 (650) 253-0000", "+16502530000", "+1 650.253.0000")]
    assert len({r["profile_id"] for r in kr}) == 1
    assert len({r["profile_id"] for r in us}) == 1
    assert us[0]["profile_id"] != kr[0]["profile_id"]
    assert await count_rows(client.app, "profiles") == 2
    resp = await client.get("/v1/profiles", params={"identifier": "phone:010 1234 5678"})
    assert resp.status == 200
    assert (await resp.json())["id"] == kr[0]["profile_id"]
    resp = await client.get("/v1/profiles", params={"identifier": "phone:+1 650 253 0000"})
    assert (await resp.json())["id"] == us[0]["profile_id"]
    # Without a country code the number is read in the default region (KR), where it is not valid.
    resp = await client.get("/v1/profiles", params={"identifier": "phone:(650) 253-0000"})
    assert resp.status == 422
    assert (await resp.json())["fields"][0]["field"] == "identifier"


async def test_email_in_different_case_resolves_to_one_profile(client):
    a = await post(client, with_identifiers(("email", "Minji.Kim@Example.COM"), channel="email"))
    b = await post(client, with_identifiers(("email", "minji.kim@example.com"), channel="email"))
    assert a["profile_id"] == b["profile_id"]
    resp = await client.get("/v1/profiles", params={"identifier": "email:MINJI.KIM@example.com"})
    body = await resp.json()
    assert body["id"] == a["profile_id"]
    assert body["identifiers"] == [{"type": "email", "value": "minji.kim@example.com"}]


async def test_chat_visitor_who_gives_their_email_is_merged_and_the_timeline_shows_both(client):
    by_email = await post(client, with_identifiers(("email", "lee@example.com"), channel="email"))
    by_chat = await post(client, with_identifiers(("chat_visitor", "v-123")))
    assert by_email["profile_id"] != by_chat["profile_id"]
    both = await post(client, with_identifiers(("chat_visitor", "v-123"), ("email", "lee@example.com")))
    survivor = min(by_email["profile_id"], by_chat["profile_id"], key=uuid.UUID)
    assert both["profile_id"] == survivor == by_email["profile_id"]
    timeline = await (await client.get(f"/v1/profiles/{survivor}/timeline")).json()
    assert {i["id"] for i in timeline["items"]} == {by_email["id"], by_chat["id"], both["id"]}
    assert {i["channel"] for i in timeline["items"]} == {"email", "chat"}
    # The merged-away profile points at the survivor.
    resp = await client.get(f"/v1/profiles/{by_chat['profile_id']}", allow_redirects=False)
    assert resp.status == 301
    assert (await resp.json())["merged_into"] == survivor
    resp = await client.get(f"/v1/profiles/{by_chat['profile_id']}")  # followed
    assert (await resp.json())["id"] == survivor


async def test_a_nameless_profile_takes_the_first_name_a_later_contact_gives(client):
    first = await post(client, sms("010-2222-3333", name=None))
    later = await post(client, {**sms("010-2222-3333", name="Kim Minji"), "channel": "email"})
    await post(client, sms("010-2222-3333", name="Minji"))  # a name it has is kept
    assert later["profile_id"] == first["profile_id"]
    profile = await (await client.get(f"/v1/profiles/{first['profile_id']}")).json()
    assert profile["display_name"] == "Kim Minji"
    async with client.app[keys.ENGINE].connect() as conn:
        updates = (await conn.execute(text(
            "SELECT body FROM outbox WHERE type = 'profile.updated' AND subject = :pid"),
            {"pid": first["profile_id"]})).scalars().all()
    assert len(updates) == 1
    data = json.loads(updates[0])["data"]
    assert data["changed"] == {"display_name": "Kim Minji"}
    assert (data["source"], data["interaction_id"]) == ("interaction", later["id"])


async def test_fifty_concurrent_ingests_of_one_new_identifier_make_one_profile(client):
    """Through the HTTP API on both backends (the pipeline test covers two writers racing)."""
    results = await asyncio.gather(*(post(client, sms("010-8888-0000" if i % 2 else "+82 10 8888 0000"))
                                     for i in range(50)))
    assert len({r["profile_id"] for r in results}) == 1
    assert await count_rows(client.app, "profiles") == 1
    assert await count_rows(client.app, "identifiers") == 1


async def test_two_different_loyalty_ids_raise_a_suggestion_not_a_merge(client):
    first = await post(client, with_identifiers(("loyalty_id", "L-1"), ("phone", "010-1111-2222"), channel="pos"))
    second = await post(client, with_identifiers(("loyalty_id", "L-2"), ("email", "park@example.com")))
    linked = await post(client, with_identifiers(("phone", "010-1111-2222"), ("email", "park@example.com"),
                                                 ("chat_visitor", "v-9")))
    assert linked["profile_id"] == first["profile_id"]  # attached to the older, not merged
    assert await count_rows(client.app, "profile_merges") == 0
    resp = await client.get(f"/v1/profiles/{second['profile_id']}")
    assert resp.status == 200
    suggestions = (await (await client.get("/v1/profiles/merge-suggestions")).json())["items"]
    assert len(suggestions) == 1
    s = suggestions[0]
    assert (s["profile_id"], s["other_id"]) == (first["profile_id"], second["profile_id"])
    assert "loyalty_id" in s["reason"] and s["interaction_id"] == linked["id"]
    # The same conflict again records no second suggestion.
    await post(client, with_identifiers(("loyalty_id", "L-1"), ("loyalty_id", "L-2")))
    assert await count_rows(client.app, "merge_suggestions") == 1
    # An operator merges it by hand; the suggestion is resolved.
    resp = await client.post(f"/v1/profiles/{second['profile_id']}/merge", json={"other": first["profile_id"]})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["survivor_id"] == first["profile_id"]
    assert (await (await client.get("/v1/profiles/merge-suggestions")).json())["items"] == []


async def test_merge_policy_can_forbid_merging_on_an_identifier_type(aiohttp_client, make_settings):
    settings = make_settings(merge_policy={"auto_merge_types": ["email", "phone"]})
    client = await aiohttp_client(create_app(settings))
    a = await post(client, with_identifiers(("email", "choi@example.com")))
    b = await post(client, with_identifiers(("chat_visitor", "v-77")))
    c = await post(client, with_identifiers(("chat_visitor", "v-77"), ("email", "choi@example.com")))
    assert c["profile_id"] == a["profile_id"] != b["profile_id"]
    assert await count_rows(client.app, "merge_suggestions") == 1
    async with client.app[keys.ENGINE].connect() as conn:
        reason = (await conn.execute(text("SELECT reason FROM merge_suggestions"))).scalar_one()
    assert "chat_visitor" in reason


def test_plan_merges_across_a_batch_unless_exclusive_ids_differ():
    now = datetime.now(UTC)
    a, b = uuid.UUID(int=1), uuid.UUID(int=2)
    stored = {a: {("loyalty_id", "L-1")}, b: {("loyalty_id", "L-2")}}
    plan = IdentityPlan(known={("phone", "+1"): a, ("email", "x@y.z"): b}, now=now,
                        load_exclusive=lambda ids: {i: stored[i] for i in ids})
    assert plan.resolve([("phone", "+1"), ("email", "x@y.z")]) == a
    assert plan.merges == [] and [(s.profile_id, s.other_id) for s in plan.suggestions] == [(a, b)]
    # Without the policy's exclusive types the same link merges.
    plan = IdentityPlan(known={("phone", "+1"): a, ("email", "x@y.z"): b}, now=now,
                        policy=ProfilePolicy(MergePolicySettings(exclusive_types=frozenset())))
    assert plan.resolve([("phone", "+1"), ("email", "x@y.z")]) == a
    assert [(m.survivor, m.merged) for m in plan.merges] == [(a, b)]


def test_plan_sees_a_loyalty_id_attached_earlier_in_the_same_batch():
    now = datetime.now(UTC)
    a, b = uuid.UUID(int=1), uuid.UUID(int=2)
    plan = IdentityPlan(known={("phone", "+1"): a, ("email", "x@y.z"): b}, now=now,
                        load_exclusive=lambda ids: {b: {("loyalty_id", "L-2")}} if b in ids else {})
    plan.resolve([("phone", "+1"), ("loyalty_id", "L-1")])
    assert plan.resolve([("loyalty_id", "L-1"), ("email", "x@y.z")]) == a
    assert plan.merges == [] and len(plan.suggestions) == 1
