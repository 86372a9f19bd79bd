"""The POS adapter through a real hub on SQLite and PostgreSQL: signed sales and refunds reach the
profile (RFM, tier, timeline), retries and replays are repeats, anything unsigned, mis-signed or
stale is refused with 403 and counted, bad fields are named and nothing is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import text

from adapters.pos import PosAdapter
from adapters.registry import AdapterConfigError, available
from hub import keys
from hub.app import create_app
from tests.adapters.conftest import PUBLIC_BASE_URL
from tests.adapters.fake_twilio import inbound_params
from tests.adapters.pos_support import OTHER_SECRET, PATH, SECRET, encode, post, sale, signed_headers, stale
from tests.hub.conftest import count_rows, eventually

POS = {"secret": SECRET, "default_currency": "KRW"}


@pytest.fixture
async def hub(aiohttp_client, make_settings, tmp_path):
    settings = make_settings(blob_dir=str(tmp_path / "blobs"), adapters={"pos": POS},
                             value_score={"tiers": {"vip": 90, "regular": 1}, "monetary_cap": 100000,
                                          "frequency_cap": 3, "weights": [0, 0.3, 0.5]})
    return await aiohttp_client(create_app(settings))


async def profile_of(hub, ident: str) -> dict:
    resp = await hub.get(f"/v1/profiles?identifier={quote(ident)}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def timeline(hub, pid: str) -> list[dict]:
    return (await (await hub.get(f"/v1/profiles/{pid}/timeline")).json())["items"]


async def outbox(hub) -> list[tuple[str, dict]]:
    async with hub.app[keys.ENGINE].connect() as conn:
        rows = (await conn.execute(text("SELECT routing_key, body FROM outbox ORDER BY seq"))).all()
    return [(key, json.loads(payload)) for key, payload in rows]


async def nothing_written(hub) -> bool:
    return all([await count_rows(hub.app, t) == 0 for t in ("interactions", "profiles", "outbox")])


# --- a sale ---
@pytest.mark.clock
async def test_a_signed_sale_is_committed_and_joins_the_customers_profile(hub):
    resp = await post(hub, sale())
    assert resp.status == 201, await resp.text()
    answer = await resp.json()
    assert answer["created"] is True and answer["profile_id"]

    profile = await profile_of(hub, "loyalty_id:LOY-77")
    assert profile["id"] == answer["profile_id"]
    assert profile["display_name"] == "Kim Minji"
    assert {(i["type"], i["value"]) for i in profile["identifiers"]} == {
        ("loyalty_id", "LOY-77"), ("phone", "+821012345678"), ("email", "minji@example.com")}
    assert profile["rfm"]["frequency"] == 1 and profile["rfm"]["monetary"] == 30000
    assert profile["rfm"]["last_purchase_at"].startswith("2026-11-20T03:00:00")
    assert profile["value_score"] > 0 and profile["tier"] == "regular"

    [item] = await timeline(hub, answer["profile_id"])
    assert item["id"] == answer["id"]
    assert (item["channel"], item["kind"], item["provider"], item["provider_ref"]) == ("pos", "transaction", "pos",
                                                                                        "S01:R-0001")
    assert item["transaction"]["total"] == "30000" and item["transaction"]["currency"] == "KRW"
    assert [(i["sku"], i["qty"], i["unit_price"], i["category"]) for i in item["transaction"]["items"]] == [
        ("TEA-01", "2", "12000", "tea"), ("CUP-07", "1", "6000", "ware")]
    assert item["metadata"] == {"pos_type": "sale", "register": "2"}

    keys_ = [key for key, _ in await outbox(hub)]
    assert "interaction.received.pos" in keys_ and "profile.updated" in keys_


async def test_the_same_customer_on_another_channel_meets_the_purchase(hub):
    sms = {"channel": "sms", "direction": "inbound", "kind": "message", "provider": "gw", "provider_ref": "M1",
           "occurred_at": "2026-11-21T10:00:00+09:00",
           "sender": {"identifiers": [{"type": "phone", "value": "+82 10 1234 5678"}]}, "content": {"text": "hi"}}
    texted = await (await hub.post("/v1/interactions", json=sms)).json()
    bought = await (await post(hub, sale())).json()
    assert bought["profile_id"] == texted["profile_id"]
    assert {i["channel"] for i in await timeline(hub, bought["profile_id"])} == {"sms", "pos"}


async def test_an_anonymous_sale_is_stored_without_a_profile(hub):
    resp = await post(hub, sale("R-ANON", customer=None))
    assert resp.status == 201
    assert (await resp.json())["profile_id"] is None
    assert await count_rows(hub.app, "interactions") == 1 and await count_rows(hub.app, "profiles") == 0


async def test_default_currency_and_local_times_come_from_the_config(aiohttp_client, make_settings, tmp_path):
    settings = make_settings(blob_dir=str(tmp_path / "blobs"),
                             adapters={"pos": {**POS, "default_currency": "JPY", "timezone": "Asia/Tokyo"}})
    hub = await aiohttp_client(create_app(settings))
    payload = sale(time="2026-11-20T12:00:00")
    del payload["currency"]
    answer = await (await post(hub, payload)).json()
    stored = await (await hub.get(f"/v1/interactions/{answer['id']}")).json()
    assert stored["transaction"]["currency"] == "JPY"
    assert stored["occurred_at"] == "2026-11-20T03:00:00Z"  # noon in Tokyo, as the till meant (answered in UTC)


# --- retries and replays ---
async def test_a_resent_sale_is_a_repeat_and_changes_nothing(hub):
    first = await (await post(hub, sale())).json()
    events = len(await outbox(hub))
    again = await post(hub, sale())  # the POS's retry: a new webhook-id and timestamp, the same receipt
    assert again.status == 200
    assert await again.json() == {**first, "created": False}
    assert await count_rows(hub.app, "interactions") == 1
    assert len(await outbox(hub)) == events
    assert (await profile_of(hub, "loyalty_id:LOY-77"))["rfm"]["frequency"] == 1


async def test_a_replayed_request_inside_the_window_writes_nothing(hub):
    body = encode(sale())
    headers = signed_headers(body)
    assert (await hub.post(PATH, data=body, headers=headers)).status == 201
    replay = await hub.post(PATH, data=body, headers=headers)
    assert replay.status == 200 and (await replay.json())["created"] is False
    assert await count_rows(hub.app, "interactions") == 1
    assert (await profile_of(hub, "loyalty_id:LOY-77"))["rfm"]["monetary"] == 30000


async def test_the_same_receipt_number_in_two_stores_is_two_sales(hub):
    assert (await post(hub, sale(store="S01"))).status == 201
    assert (await post(hub, sale(store="S02"))).status == 201
    assert (await profile_of(hub, "loyalty_id:LOY-77"))["rfm"]["frequency"] == 2


# --- authenticity ---
def _tampered() -> tuple[bytes, dict[str, str]]:
    headers = signed_headers(encode(sale(total="3")))
    return encode(sale(total="30000")), headers


@pytest.mark.clock
@pytest.mark.parametrize("case", ["unsigned", "wrong_secret", "stale", "from_the_future", "tampered",
                                  "malformed_signature", "malformed_timestamp", "other_version"])
async def test_unauthentic_requests_get_403_and_write_nothing(hub, case):
    body = encode(sale())
    match case:
        case "unsigned":
            headers = {"Content-Type": "application/json"}
        case "wrong_secret":
            headers = signed_headers(body, secret=OTHER_SECRET)
        case "stale":
            headers = signed_headers(body, at=stale(6))
        case "from_the_future":
            headers = signed_headers(body, at=stale(-6))
        case "tampered":
            body, headers = _tampered()
        case "malformed_signature":
            headers = {**signed_headers(body), "webhook-signature": "v1,%%%not-base64 garbage"}
        case "malformed_timestamp":
            headers = {**signed_headers(body), "webhook-timestamp": "yesterday"}
        case "other_version":
            headers = signed_headers(body)
            headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    resp = await hub.post(PATH, data=body, headers=headers)
    assert resp.status == 403, await resp.text()
    answer = await resp.json()
    assert answer["error"] == "forbidden"
    assert await nothing_written(hub)
    metrics = await (await hub.get("/metrics")).text()
    assert 'omnihub_webhooks_refused_total{adapter="pos"} 1.0' in metrics


@pytest.mark.clock
async def test_a_request_signed_just_inside_the_window_is_taken(hub):
    assert (await post(hub, sale(), at=stale(4))).status == 201


async def test_a_body_that_is_not_utf8_is_refused_not_a_500(hub):
    resp = await post(hub, b'{"store": "\xff\xfe"}')  # Standard Webhooks sign text: this cannot verify
    assert resp.status == 403
    assert "UTF-8" in (await resp.json())["message"]


# --- bad payloads ---
@pytest.mark.parametrize(("change", "field"), [
    ({"store": None}, "store"),
    ({"store": "S 01"}, "store"),
    ({"receipt": ""}, "receipt"),
    ({"total": "-5"}, "total"),
    ({"total": "12.345678"}, "total"),
    ({"time": "2026-11-20T12:00:00"}, "time"),
    ({"time": "last tuesday"}, "time"),
    ({"currency": "₩"}, "currency"),
    ({"customer": {"phone": "12"}}, "customer.phone"),
    ({"customer": {"email": "not-an-address"}}, "customer.email"),
    ({"items": [{"sku": "A", "qty": 0, "unit_price": "1"}]}, "items.0.qty"),
    ({"items": [{"qty": 1, "unit_price": "1"}]}, "items.0.sku"),
    ({"original_receipt": "R-0000"}, "original_receipt"),
    ({"cashier": "Lee"}, "cashier"),
])
async def test_a_bad_field_is_named_in_a_422_and_nothing_is_written(hub, change, field):
    payload = {k: v for k, v in {**sale(), **change}.items() if v is not None}
    resp = await post(hub, payload)
    assert resp.status == 422, await resp.text()
    answer = await resp.json()
    assert field in [f["field"] for f in answer["fields"]], answer
    assert await nothing_written(hub)


async def test_every_bad_field_is_named_at_once(hub):
    resp = await post(hub, {**sale(), "total": "-1", "currency": "x", "receipt": ""})
    assert {f["field"] for f in (await resp.json())["fields"]} == {"total", "currency", "receipt"}


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'"a string"', b"{" * 5000])
async def test_a_body_that_is_not_a_json_object_is_a_4xx(hub, body):
    resp = await post(hub, body)
    assert resp.status in (400, 422), await resp.text()
    assert (await resp.json())["fields"][0]["field"] == "body"
    assert await nothing_written(hub)


async def test_a_sale_without_currency_is_refused_when_no_default_is_configured(aiohttp_client, make_settings,
                                                                              tmp_path):
    hub = await aiohttp_client(create_app(make_settings(blob_dir=str(tmp_path / "b"),
                                                        adapters={"pos": {"secret": SECRET}})))
    payload = sale()
    del payload["currency"]
    answer = await (await post(hub, payload)).json()
    assert answer["fields"][0]["field"] == "currency"
    assert "default_currency" in answer["fields"][0]["message"]


# --- refunds ---
@pytest.mark.clock
async def test_a_refund_lowers_monetary_but_is_no_visit_and_joins_the_sales_thread(hub):
    bought = await (await post(hub, sale(time="2026-11-20T12:00:00+09:00"))).json()
    refund = sale("R-0002", total="12000", refund=True, original_receipt="R-0001", time="2026-11-22T12:00:00+09:00",
                  items=[{"sku": "TEA-01", "qty": 1, "unit_price": "12000"}])
    resp = await post(hub, refund)
    assert resp.status == 201, await resp.text()
    profile = await profile_of(hub, "loyalty_id:LOY-77")
    assert profile["rfm"]["frequency"] == 1  # the refund is not a second purchase
    assert profile["rfm"]["monetary"] == 18000  # net spend
    assert profile["rfm"]["last_purchase_at"].startswith("2026-11-20T03:00:00")  # recency stays the sale's

    items = {i["provider_ref"]: i for i in await timeline(hub, bought["profile_id"])}
    back = items["S01:R-0002"]
    assert back["transaction"]["total"] == "-12000"
    assert back["transaction"]["items"][0]["unit_price"] == "-12000"
    assert back["tags"] == ["pos_refund"]
    assert back["metadata"]["original_receipt"] == "R-0001"
    assert back["conversation_key"] == items["S01:R-0001"]["conversation_key"]


@pytest.mark.clock
async def test_a_full_refund_takes_the_tier_the_purchase_earned(hub):
    await post(hub, sale(total="100000"))
    await post(hub, sale("R-0002"))
    await post(hub, sale("R-0003"))
    assert (await profile_of(hub, "loyalty_id:LOY-77"))["tier"] == "vip"
    await post(hub, sale("R-0004", total="100000", refund=True, original_receipt="R-0001"))
    profile = await profile_of(hub, "loyalty_id:LOY-77")
    assert profile["rfm"]["monetary"] == 60000 and profile["tier"] == "regular"
    updates = [p for key, p in await outbox(hub) if key == "profile.updated"]
    assert updates[-1]["data"]["changed"]["tier"] == "regular" and updates[-1]["data"]["source"] == "pos"


async def test_a_refund_of_a_sale_the_hub_never_saw_does_not_go_below_zero(hub):
    resp = await post(hub, sale("R-9", total="5000", refund=True))
    assert resp.status == 201
    profile = await profile_of(hub, "loyalty_id:LOY-77")
    assert profile["rfm"]["monetary"] == 0 and profile["rfm"]["frequency"] == 0
    assert profile["rfm"]["last_purchase_at"] is None
    await post(hub, sale("R-10", total="7000"))
    assert (await profile_of(hub, "loyalty_id:LOY-77"))["rfm"]["monetary"] == 7000


# --- config ---
def test_pos_registers_through_its_entry_point_like_every_adapter():
    assert available()["pos"] is PosAdapter


def test_config_problems_stop_the_hub_with_what_to_fix(make_settings, tmp_path):
    with pytest.raises(AdapterConfigError, match=r"secrt: unknown key \(did you mean 'secret'\?\)"):
        create_app(make_settings(blob_dir=str(tmp_path), adapters={"pos": {"secrt": SECRET}}))
    with pytest.raises(AdapterConfigError, match="whsec_"):
        create_app(make_settings(blob_dir=str(tmp_path), adapters={"pos": {"secret": "whsec_!!!"}}))
    with pytest.raises(AdapterConfigError, match="unknown time zone"):
        create_app(make_settings(blob_dir=str(tmp_path), adapters={"pos": {**POS, "timezone": "Mars/Olympus"}}))


def test_omnihub_config_masks_the_secret(tmp_path):
    config = tmp_path / "hub.yaml"
    config.write_text(f"adapters:\n  pos: {{secret: '{SECRET}', default_currency: KRW}}\n")
    omnihub = Path(sys.executable).with_name("omnihub")
    result = subprocess.run([str(omnihub), "--config", str(config), "config"], capture_output=True, text=True,
                            timeout=60, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["adapters"]["pos"] == {"secret": "***", "default_currency": "KRW"}
    assert SECRET.removeprefix("whsec_") not in result.stdout


async def test_logs_name_the_store_and_the_outcome_never_the_customer_or_the_secret(hub, caplog):
    caplog.set_level("DEBUG")
    await post(hub, sale())
    await post(hub, sale(), secret=OTHER_SECRET)
    records = [r for r in caplog.records if r.name.startswith("omnihub.adapters")]
    assert any(getattr(r, "store", None) == "S01" for r in records)  # the adapter's own line
    assert any(r.getMessage() == "webhook refused" for r in records)
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in records)
    for secret in ("1234-5678", "+821012345678", "minji@example.com", "Minji@Example.com", "LOY-77", "Kim Minji",
                   SECRET.removeprefix("whsec_"), OTHER_SECRET.removeprefix("whsec_")):
        assert secret not in logged


# --- campaigns ---
@pytest.mark.clock
async def test_a_refund_after_a_campaign_is_a_response_not_a_conversion(twilio, twilio_config, aiohttp_client,
                                                                         make_settings, tmp_path):
    settings = make_settings(
        public_base_url=PUBLIC_BASE_URL, blob_dir=str(tmp_path / "blobs"),
        adapters={"sms_twilio": twilio_config, "pos": POS}, quiet_hours=None,
        templates={"promo": {"sms": "이번 주 20% 할인"}})
    hub = await aiohttp_client(create_app(settings))
    inbound = "/channels/sms_twilio/inbound"
    assert (await twilio.post_signed(hub, PUBLIC_BASE_URL + inbound, inbound,
                                     inbound_params(frm="+821012345678", body="안녕하세요"))).status == 200
    pid = (await profile_of(hub, "phone:+821012345678"))["id"]
    await hub.patch(f"/v1/profiles/{pid}", json={"consents": {"sms:marketing": {"granted": True}}})
    resp = await hub.post("/v1/campaigns", json={
        "name": "week", "when": {"field": "profile.id", "op": "eq", "value": pid}, "template": "promo"})
    assert resp.status == 201, await resp.text()
    cid = (await resp.json())["id"]

    async def result() -> dict:
        return await (await hub.get(f"/v1/campaigns/{cid}")).json()

    await eventually(lambda: _completed(result))
    assert (await post(hub, sale("R-1", total="6000", refund=True))).status == 201  # the customer returns goods
    assert ((r := await result())["responded"], r["converted"]) == (1, 0)
    assert (await post(hub, sale("R-2"))).status == 201  # and then buys
    assert ((r := await result())["responded"], r["converted"]) == (1, 1)


async def _completed(result) -> bool:
    return (await result())["state"] == "completed"
