"""Twilio SMS: keywords and consent, MMS media, outbound through the real twilio client, status
callbacks, retries, threads. Every webhook is signed with twilio's own RequestValidator."""

from __future__ import annotations

import hashlib
import uuid
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import text

from adapters.base import PayloadError
from hub import keys
from hub.app import create_app
from tests.adapters.conftest import PUBLIC_BASE_URL
from tests.adapters.fake_twilio import OUR_NUMBER, inbound_params
from tests.hub.conftest import eventually

INBOUND = "/channels/sms_twilio/inbound"
CUSTOMER = "+821012345678"


@pytest.fixture
async def hub(twilio, twilio_config, aiohttp_client, make_settings, tmp_path):
    settings = make_settings(public_base_url=PUBLIC_BASE_URL, blob_dir=str(tmp_path / "blobs"),
                             adapters={"sms_twilio": twilio_config})
    client = await aiohttp_client(create_app(settings))
    client.twilio = twilio
    return client


async def text_in(hub, body: str, frm: str = CUSTOMER, **kw):
    params = inbound_params(frm=frm, body=body, **kw)
    resp = await hub.twilio.post_signed(hub, PUBLIC_BASE_URL + INBOUND, INBOUND, params)
    assert resp.status == 200, await resp.text()
    return await resp.text()


async def profile_of(hub, ident: str) -> dict:
    resp = await hub.get(f"/v1/profiles?identifier={quote(ident)}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def timeline(hub, pid: str) -> list[dict]:
    resp = await hub.get(f"/v1/profiles/{pid}/timeline")
    return (await resp.json())["items"]


async def send(hub, **body) -> dict:
    resp = await hub.post("/v1/messages", json=body)
    assert resp.status in (200, 202), await resp.text()
    return await resp.json()


async def message_state(hub, message_id: str, *wanted: str) -> dict:
    async def check():
        m = await (await hub.get(f"/v1/messages/{message_id}")).json()
        return m if m["state"] in wanted else None
    return await eventually(check, timeout=10)


async def outbox_types(hub) -> list[str]:
    async with hub.app[keys.ENGINE].connect() as conn:
        return list((await conn.execute(text("SELECT type FROM outbox ORDER BY seq"))).scalars())


# --- keywords and consent ---
# Midday in Seoul, outside the default marketing quiet hours (21:00-08:00 Asia/Seoul): the final send
# must go out whatever hour CI runs at. The clock ticks on from there, so timeouts still pass.
@pytest.mark.clock(local="12:00")
async def test_stop_opts_out_answers_twiml_and_blocks_marketing(hub):
    reply = await text_in(hub, " stop ")
    assert "<Message>You are unsubscribed" in reply
    profile = await profile_of(hub, f"phone:{CUSTOMER}")
    assert profile["consents"]["sms:marketing"]["granted"] is False
    assert profile["consents"]["sms:transactional"]["granted"] is False
    refused = await hub.post("/v1/messages", json={"channel": "sms", "to": {"type": "phone", "value": CUSTOMER},
                                                   "text": "50% off today", "purpose": "marketing"})
    assert refused.status == 409
    assert (await refused.json())["fields"][0]["field"] == "to"
    assert hub.twilio.sent == []
    # START (here the configured Korean equivalent) opts back in, and the send goes out.
    assert "resubscribed" in await text_in(hub, "수신동의")
    profile = await profile_of(hub, f"phone:{CUSTOMER}")
    assert profile["consents"]["sms:marketing"]["granted"] is True
    sent = await send(hub, channel="sms", to={"type": "phone", "value": CUSTOMER}, text="50% off", purpose="marketing")
    await message_state(hub, sent["id"], "sent")


async def test_local_keyword_and_help(hub):
    assert "unsubscribed" in await text_in(hub, "수신거부")
    assert (await profile_of(hub, f"phone:{CUSTOMER}"))["consents"]["sms:marketing"]["granted"] is False
    help_reply = await text_in(hub, "HELP", frm="+821099998888")
    assert "Reply STOP" in help_reply
    assert (await profile_of(hub, "phone:+821099998888"))["consents"] == {}
    plain = await text_in(hub, "I want to stop by the store", frm="+821077776666")
    assert "<Message>" not in plain  # not a keyword: an empty TwiML answer
    assert (await profile_of(hub, "phone:+821077776666"))["consents"] == {}


# --- MMS ---
async def test_mms_media_is_fetched_into_the_blob_store(hub):
    photo = b"\xff\xd8\xff\xe0 fake jpeg bytes" * 50
    url = hub.twilio.add_media("ME1", photo, "image/jpeg")
    await text_in(hub, "사진 보냅니다", media=[(url, "image/jpeg")])
    items = await timeline(hub, (await profile_of(hub, f"phone:{CUSTOMER}"))["id"])
    [attachment] = items[0]["attachments"]
    assert attachment["sha256"] == hashlib.sha256(photo).hexdigest()
    assert attachment["size"] == len(photo) and attachment["content_type"] == "image/jpeg"
    assert await hub.app[keys.BLOBS].get(attachment["storage_ref"]) == photo


async def test_mms_whose_media_cannot_be_fetched_is_still_taken(hub):
    await text_in(hub, "", media=[(hub.twilio.base_url + "/media/missing", "image/png")])
    items = await timeline(hub, (await profile_of(hub, f"phone:{CUSTOMER}"))["id"])
    assert items[0].get("attachments", []) == []
    assert items[0]["metadata"]["media_url_0"].endswith("/media/missing")


# --- outbound and status callbacks ---
async def test_send_then_delivered_callback(hub):
    sent = await send(hub, channel="sms", to={"type": "phone", "value": "010-1234-5678"}, text="주문이 발송되었습니다")
    done = await message_state(hub, sent["id"], "sent")
    [seen] = hub.twilio.sent
    assert seen["To"] == CUSTOMER and seen["From"] == OUR_NUMBER and seen["Body"] == "주문이 발송되었습니다"
    assert seen["StatusCallback"] == f"{PUBLIC_BASE_URL}/channels/sms_twilio/status?message_id={sent['id']}"
    assert done["provider_ref"] == seen["Sid"]
    resp = await hub.twilio.status_callback(hub, seen, "delivered")
    assert resp.status == 204
    await message_state(hub, sent["id"], "delivered")
    # A late "sent" does not undo "delivered".
    await hub.twilio.status_callback(hub, seen, "sent")
    assert (await message_state(hub, sent["id"], "delivered"))["state"] == "delivered"
    assert (await outbox_types(hub)).count("message.delivered") == 1
    # The sent message is on the customer's timeline.
    items = await timeline(hub, (await profile_of(hub, f"phone:{CUSTOMER}"))["id"])
    assert [i["direction"] for i in items] == ["outbound"]


async def test_undelivered_callback_fails_the_message(hub):
    sent = await send(hub, channel="sms", to={"type": "phone", "value": CUSTOMER}, text="hi")
    await message_state(hub, sent["id"], "sent")
    await hub.twilio.status_callback(hub, hub.twilio.sent[0], "undelivered", "30003")
    failed = await message_state(hub, sent["id"], "failed")
    assert failed["error"]["code"] == "30003"
    assert "message.failed" in await outbox_types(hub)


async def test_unsigned_status_callback_is_refused(hub):
    sent = await send(hub, channel="sms", to={"type": "phone", "value": CUSTOMER}, text="hi")
    await message_state(hub, sent["id"], "sent")
    seen = hub.twilio.sent[0]
    resp = await hub.post(f"/channels/sms_twilio/status?message_id={sent['id']}",
                          data={"MessageSid": seen["Sid"], "MessageStatus": "delivered"})
    assert resp.status == 403
    assert (await (await hub.get(f"/v1/messages/{sent['id']}")).json())["state"] == "sent"


async def test_transient_twilio_errors_are_retried_and_sent_once(hub):
    hub.twilio.fail(CUSTOMER, (503, 20500), (429, 20429))
    sent = await send(hub, channel="sms", to={"type": "phone", "value": CUSTOMER}, text="retry me")
    await message_state(hub, sent["id"], "sent")
    assert len(hub.twilio.sent) == 1


async def test_permanent_twilio_error_fails_at_once(hub):
    hub.twilio.fail(CUSTOMER, (400, 21211))
    sent = await send(hub, channel="sms", to={"type": "phone", "value": CUSTOMER}, text="bad number")
    failed = await message_state(hub, sent["id"], "failed")
    assert failed["error"]["code"] == "21211" and failed["attempts"] == 1
    assert hub.twilio.sent == [] and not hub.twilio.failures[CUSTOMER]
    assert "message.failed" in await outbox_types(hub)


async def test_idempotency_key_sends_once(hub):
    body = {"channel": "sms", "to": {"type": "phone", "value": CUSTOMER}, "text": "once", "idempotency_key": "ord-1"}
    first, second = await send(hub, **body), await send(hub, **body)
    assert first["id"] == second["id"]
    await message_state(hub, first["id"], "sent")
    assert len(hub.twilio.sent) == 1


async def test_bad_message_requests_name_the_field(hub):
    cases = [({"channel": "sms", "text": "x"}, "body"),  # no recipient
             ({"channel": "fax", "to": {"type": "fax", "value": CUSTOMER}, "text": "x"}, "channel"),
             ({"channel": "sms", "to": {"type": "phone", "value": "12"}, "text": "x"}, "to.value")]
    for body, field in cases:
        resp = await hub.post("/v1/messages", json=body)
        assert resp.status == 422, (body, await resp.text())
        fields = [f["field"] for f in (await resp.json())["fields"]]
        assert any(f.startswith(field) for f in fields), (body, fields)


# --- threads ---
async def test_agent_reply_lands_in_the_customers_thread(hub):
    await text_in(hub, "배송지 변경 부탁드립니다")
    pid = (await profile_of(hub, f"phone:{CUSTOMER}"))["id"]
    [inbound] = await timeline(hub, pid)
    sent = await send(hub, in_reply_to=inbound["id"], text="네, 변경해 드렸습니다")
    await message_state(hub, sent["id"], "sent")
    await eventually(lambda: _count_timeline(hub, pid, 2))
    items = await timeline(hub, pid)
    assert {i["direction"] for i in items} == {"inbound", "outbound"}
    assert len({i["conversation_key"] for i in items}) == 1
    assert hub.twilio.sent[0]["To"] == CUSTOMER


async def _count_timeline(hub, pid, n):
    return len(await timeline(hub, pid)) == n


# --- the parser under fuzz ---
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.dictionaries(st.sampled_from(["MessageSid", "SmsSid", "From", "To", "Body", "NumMedia", "MediaUrl0",
                                        "MediaContentType0", "AccountSid"]),
                       st.text(max_size=40), max_size=9))
def test_normalize_never_raises_anything_but_payload_errors(sms_adapter, form):
    try:
        interaction = sms_adapter.normalize(form)
    except (PayloadError, ValidationError):
        return
    assert interaction.provider_ref and interaction.sender.identifiers[0].type == "phone"


@pytest.fixture
def sms_adapter(parser_config):
    from datetime import UTC, datetime

    from adapters.base import AdapterDeps
    from adapters.sms_twilio import TwilioSmsAdapter, TwilioSmsConfig
    from schemas import BUILTIN_CHANNELS, CHANNELS_KEY, DEFAULT_REGION_KEY

    deps = AdapterDeps(ingest=None, report_status=None, blobs=None, state=None,  # type: ignore[arg-type]
                       clock=lambda: datetime.now(UTC), public_base_url=PUBLIC_BASE_URL,
                       validation_context={DEFAULT_REGION_KEY: "KR", CHANNELS_KEY: BUILTIN_CHANNELS})
    return TwilioSmsAdapter(TwilioSmsConfig.model_validate(parser_config), deps)


@pytest.fixture
def parser_config():  # the parser needs no running fake
    return {"account_sid": "AC" + "0" * 32, "auth_token": "t", "from_number": OUR_NUMBER,
            "keywords": {"opt_out": ["수신거부"]}}



async def test_webhooks_signed_with_a_shared_key_and_sha256(twilio, twilio_config, aiohttp_client, make_settings,
                                                            tmp_path):
    from urllib.parse import urlencode

    from twilio.request_validator import RequestValidator

    settings = make_settings(public_base_url=PUBLIC_BASE_URL, blob_dir=str(tmp_path / "blobs"),
                             adapters={"sms_twilio": {**twilio_config, "webhooks_shared_key": "shared-secret"}})
    hub = await aiohttp_client(create_app(settings))
    params = inbound_params(frm=CUSTOMER, body="hello")
    good = RequestValidator("shared-secret").compute_signature(PUBLIC_BASE_URL + INBOUND, params, "HMAC_SHA256")
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"}
    # The auth token's SHA-1 signature is not what this header announces.
    legacy = RequestValidator(twilio.auth_token).compute_signature(PUBLIC_BASE_URL + INBOUND, params)
    resp = await hub.post(INBOUND, data=urlencode(params), headers={**headers, "X-Twilio-Signature": legacy})
    assert resp.status == 403
    resp = await hub.post(INBOUND, data=urlencode(params), headers={**headers, "X-Twilio-Signature": good})
    assert resp.status == 200, await resp.text()


async def test_auto_channel_follows_consent_and_falls_back(hub):
    """A customer who texted STOP still gets a transactional message on the next channel in the
    order; with no channel left the request is refused naming `channel`."""
    await text_in(hub, "STOP")
    pid = (await profile_of(hub, f"phone:{CUSTOMER}"))["id"]
    refused = await hub.post("/v1/messages", json={"profile_id": pid, "channel": ["sms"], "text": "x"})
    assert refused.status == 422 and (await refused.json())["fields"][0]["field"] == "channel"
    await text_in(hub, "START")
    sent = await send(hub, profile_id=pid, channel="auto", text="your order shipped")
    assert sent["channel"] == "sms"
    await message_state(hub, sent["id"], "sent")
    inbound = (await timeline(hub, pid))[-1]
    reply_auto = await hub.post("/v1/messages", json={"in_reply_to": inbound["id"], "channel": "auto", "text": "x"})
    assert reply_auto.status == 422 and (await reply_auto.json())["fields"][0]["field"] == "channel"


@pytest.mark.clock
async def test_a_message_claimed_by_a_hub_that_died_is_sent_when_its_lease_runs_out(twilio, twilio_config,
                                                                                  aiohttp_client, make_settings,
                                                                                  tmp_path):
    from datetime import UTC, datetime, timedelta

    from hub.storage.engine import create_engine
    from hub.storage.migrate import upgrade
    from hub.storage.outbound_models import messages

    settings = make_settings(public_base_url=PUBLIC_BASE_URL, blob_dir=str(tmp_path / "blobs"),
                             adapters={"sms_twilio": twilio_config})
    engine = create_engine(settings.database_url)
    await upgrade(engine)
    now = datetime.now(UTC)
    rows = [{"id": uuid.uuid4(), "channel": "sms", "adapter": "sms_twilio", "to_type": "phone",
             "to_value": CUSTOMER, "purpose": "transactional", "state": "sending", "request": '{"text": "%s"}' % text,
             "attempts": 1, "lease_until": now + lease, "created_at": now, "updated_at": now}
            for text, lease in (("lease over", timedelta(seconds=-1)), ("lease held", timedelta(minutes=10)))]
    async with engine.begin() as conn:
        await conn.execute(messages.insert(), rows)
    await engine.dispose()
    hub = await aiohttp_client(create_app(settings))
    done = await message_state(hub, str(rows[0]["id"]), "sent")
    assert done["attempts"] == 2
    assert [m["Body"] for m in twilio.sent] == ["lease over"]  # the other is still another hub's
    assert (await (await hub.get(f"/v1/messages/{rows[1]['id']}")).json())["state"] == "sending"


async def test_with_the_pipeline_stopped_a_webhook_is_answered_503_and_taken_when_resent(hub):
    pipeline = hub.app[keys.PIPELINE]
    params = inbound_params(frm=CUSTOMER, body="still there?")
    await pipeline.stop()
    try:
        resp = await hub.twilio.post_signed(hub, PUBLIC_BASE_URL + INBOUND, INBOUND, params)
        assert resp.status == 503, await resp.text()
        assert resp.headers["Retry-After"] and (await resp.json())["error"] == "unavailable"
    finally:
        await pipeline.start()
    resp = await hub.twilio.post_signed(hub, PUBLIC_BASE_URL + INBOUND, INBOUND, params)
    assert resp.status == 200, await resp.text()
    pid = (await profile_of(hub, f"phone:{CUSTOMER}"))["id"]
    assert [i["content"]["text"] for i in await timeline(hub, pid)] == ["still there?"]



async def test_a_form_with_a_repeated_key_is_checked_over_every_value(hub):
    from urllib.parse import urlencode

    from multidict import MultiDict
    from twilio.request_validator import RequestValidator

    pairs = [*inbound_params(frm=CUSTOMER, body="two tags").items(), ("Tag", "b"), ("Tag", "a")]
    signature = RequestValidator(hub.twilio.auth_token).compute_signature(PUBLIC_BASE_URL + INBOUND, MultiDict(pairs))
    resp = await hub.post(INBOUND, data=urlencode(pairs), headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
    assert resp.status == 200, await resp.text()
    # Signed over one value only, it is refused.
    resp = await hub.post(INBOUND, data=urlencode(pairs[:-1]), headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
    assert resp.status == 403
