"""Campaigns end to end (SQLite and PostgreSQL, the real twilio client against the fake Twilio API):
a segment's customers get the rendered template where they consented, refusals are counted, the
campaign completes with `campaign.completed`, and replies and store purchases count as results."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from urllib.parse import quote

import pytest
from sqlalchemy import select

from hub import keys
from hub.app import create_app
from hub.storage.models import outbox
from hub.storage.outbound_models import messages
from tests.adapters.conftest import PUBLIC_BASE_URL
from tests.adapters.fake_twilio import inbound_params
from tests.hub.conftest import eventually
from tests.hub.payloads import sms

# Fixed clock (tests/conftest.py): campaigns start at their time and throttle by the minute.
pytestmark = pytest.mark.clock

INBOUND = "/channels/sms_twilio/inbound"
KIM, LEE, PARK = "+821055500001", "+821055500002", "+821055500003"


@pytest.fixture
async def hub(twilio, twilio_config, aiohttp_client, make_settings, tmp_path):
    settings = make_settings(
        public_base_url=PUBLIC_BASE_URL, blob_dir=str(tmp_path / "blobs"), adapters={"sms_twilio": twilio_config},
        templates={"promo": {"sms": "{{ profile.display_name }}님, 이번 주 {{ discount }}% 할인"}},
        segments={"vip": {"field": "profile.tier", "op": "eq", "value": "vip"}}, quiet_hours=None)
    client = await aiohttp_client(create_app(settings))
    client.twilio = twilio
    return client


async def text_in(hub, frm: str, body: str) -> None:
    resp = await hub.twilio.post_signed(hub, PUBLIC_BASE_URL + INBOUND, INBOUND, inbound_params(frm=frm, body=body))
    assert resp.status == 200, await resp.text()


async def customer(hub, phone: str, name: str, **fields) -> str:
    await text_in(hub, phone, "안녕하세요")
    profile = await (await hub.get(f"/v1/profiles?identifier={quote('phone:' + phone)}")).json()
    resp = await hub.patch(f"/v1/profiles/{profile['id']}", json={"display_name": name, **fields})
    assert resp.status == 200, await resp.text()
    return profile["id"]


async def campaign(hub, campaign_id: str) -> dict:
    resp = await hub.get(f"/v1/campaigns/{campaign_id}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def _state(hub, campaign_id: str, state: str) -> bool:
    return (await campaign(hub, campaign_id))["state"] == state


async def test_a_segment_campaign_sends_where_consented_and_counts_what_came_of_it(hub):
    marketing = {"consents": {"sms:marketing": {"granted": True}}}
    await customer(hub, KIM, "김민지", tier="vip", **marketing)
    await customer(hub, LEE, "이서준", tier="vip")  # in the segment, never opted in
    await customer(hub, PARK, "박지우", **marketing)  # opted in, not in the segment
    resp = await hub.post("/v1/campaigns", json={"name": "vip week", "segment": "vip", "template": "promo",
                                                 "variables": {"discount": 20}})
    assert resp.status == 201, await resp.text()
    cid = (await resp.json())["id"]
    await eventually(lambda: _state(hub, cid, "completed"))
    assert [(m["To"], m["Body"]) for m in hub.twilio.sent] == [(KIM, "김민지님, 이번 주 20% 할인")]
    result = await campaign(hub, cid)
    assert {k: result[k] for k in ("targeted", "queued", "skipped", "sent", "failed", "waiting")} == {
        "targeted": 2, "queued": 1, "skipped": {"no_channel": 1}, "sent": 1, "failed": 0, "waiting": 0}
    assert (result["responded"], result["converted"]) == (0, 0)
    async with hub.app[keys.ENGINE].connect() as conn:
        bodies = (await conn.execute(select(outbox.c.body).where(outbox.c.type == "campaign.completed"))).scalars().all()
    assert [json.loads(b)["data"]["sent"] for b in bodies] == [1]
    # Kim answers by SMS and then buys in store: a response and a conversion.
    await text_in(hub, KIM, "쿠폰 어디서 쓰나요?")
    visit = {**sms(KIM, ref="R-1"), "channel": "pos", "provider": "store-7", "kind": "event",
             "transaction": {"total": "52000", "currency": "KRW", "items": [{"sku": "A1", "unit_price": "52000"}]}}
    assert (await hub.post("/v1/interactions", json=visit)).status == 201
    result = await campaign(hub, cid)
    assert (result["responded"], result["converted"]) == (1, 1)


async def test_a_condition_audience_and_a_throttle_space_the_messages(hub):
    marketing = {"consents": {"sms:marketing": {"granted": True}}}
    await customer(hub, KIM, "김민지", tier="gold", **marketing)
    await customer(hub, LEE, "이서준", tier="gold", **marketing)
    resp = await hub.post("/v1/campaigns", json={
        "name": "gold", "when": {"field": "profile.tier", "op": "eq", "value": "gold"}, "template": "promo",
        "variables": {"discount": 5}, "per_minute": 1})
    assert resp.status == 201, await resp.text()
    cid = (await resp.json())["id"]
    await eventually(lambda: _state(hub, cid, "sending"))
    async with hub.app[keys.ENGINE].connect() as conn:
        held = (await conn.execute(select(messages.c.not_before).where(messages.c.campaign_id == uuid.UUID(cid))
                                   .order_by(messages.c.not_before))).scalars().all()
    assert len(held) == 2 and held[0] is not None
    assert 59 <= (held[1] - held[0]).total_seconds() <= 61  # one a minute
    await eventually(lambda: _sent_one(hub))
    # The first counts as sent once its copy is on the timeline, a commit after Twilio answered.
    await eventually(lambda: _counted_sent(hub, cid, 1))
    assert (await campaign(hub, cid))["waiting"] == 1  # the second waits for its minute
    assert len(hub.twilio.sent) == 1


async def _sent_one(hub) -> bool:
    return len(hub.twilio.sent) == 1


async def _counted_sent(hub, campaign_id: str, count: int) -> bool:
    return (await campaign(hub, campaign_id))["sent"] == count


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "segment": "vip", "template": "nope"}, "template"),
    ({"name": "x", "segment": "vip", "when": {"field": "profile.tier", "op": "eq", "value": "a"}, "template": "promo"},
     "body"),
    ({"name": "x", "when": {"field": "profile.tier", "op": "bogus", "value": 1}, "template": "promo"}, "when"),
    ({"name": "x", "segment": "vip", "template": "promo", "start_at": "tomorrow"}, "start_at"),
])
async def test_a_bad_campaign_is_refused_naming_the_field(hub, body, field):
    resp = await hub.post("/v1/campaigns", json=body)
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["fields"][0]["field"] == field
    assert (await hub.get(f"/v1/campaigns/{'0' * 32}")).status == 404


async def test_a_campaign_starts_at_its_time(hub):
    resp = await hub.post("/v1/campaigns", json={"name": "later", "segment": "vip", "template": "promo",
                                                 "start_at": "2099-01-01T09:00:00+09:00"})
    assert resp.status == 201
    result = await campaign(hub, (await resp.json())["id"])
    assert result["state"] == "scheduled"
    assert datetime.fromisoformat(result["start_at"]).year == 2099
