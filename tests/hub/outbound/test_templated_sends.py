"""Templated messages end to end: rules' auto_reply and send_message, POST /v1/messages with a
template, refusals kept with their reason, and marketing held through the customer's quiet hours
(SQLite and PostgreSQL, the real twilio client against the local fake Twilio API)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import select

from hub import keys
from hub.app import create_app
from hub.storage.rules_models import scheduled_actions
from tests.adapters.conftest import PUBLIC_BASE_URL
from tests.adapters.fake_twilio import inbound_params
from tests.hub.conftest import eventually

# Fixed clock (tests/conftest.py): marketing is held through quiet hours.
pytestmark = pytest.mark.clock

INBOUND = "/channels/sms_twilio/inbound"
CUSTOMER = "+821055501234"
TEMPLATES = {
    "got-it": {"sms": "{{ profile.display_name or '고객' }}님, 문의 잘 받았습니다: {{ interaction.text }}"},
    "promo": {"sms": "이번 주 {{ discount }}% 할인", "email": {"subject": "할인", "text": "{{ discount }}%"}},
    "needs-order": {"default": "주문 {{ order }}"},
}
RULES = """\
timezone: Asia/Seoul
rules:
  - name: ack-sms
    on: interaction.received
    when: {all: [{field: interaction.channel, op: eq, value: sms}, {field: interaction.content.text, op: matches, value: "(?i)help"}]}
    then:
      - auto_reply: got-it
  - name: promo-on-first-contact
    on: interaction.received
    when: {all: [{field: interaction.content.text, op: matches, value: "(?i)promo"}]}
    then:
      - send_message: {template: promo, channel: auto, purpose: marketing}
"""


@pytest.fixture
async def hub(twilio, twilio_config, aiohttp_client, make_settings, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES, encoding="utf-8")
    settings = make_settings(public_base_url=PUBLIC_BASE_URL, blob_dir=str(tmp_path / "blobs"),
                             adapters={"sms_twilio": twilio_config}, rules_dir=str(rules), templates=TEMPLATES,
                             quiet_hours=None)
    client = await aiohttp_client(create_app(settings))
    client.twilio = twilio
    return client


async def text_in(hub, body: str) -> None:
    resp = await hub.twilio.post_signed(hub, PUBLIC_BASE_URL + INBOUND, INBOUND, inbound_params(frm=CUSTOMER, body=body))
    assert resp.status == 200, await resp.text()


async def actions(hub) -> list[dict]:
    async with hub.app[keys.ENGINE].connect() as conn:
        rows = (await conn.execute(select(scheduled_actions.c.kind, scheduled_actions.c.state,
                                          scheduled_actions.c.outcome).order_by(scheduled_actions.c.created_at))).all()
    return [{"kind": k, "state": s, "outcome": json.loads(o) if o else None} for k, s, o in rows]


async def _true(value: bool) -> bool:
    return value


async def test_an_auto_reply_rule_answers_on_the_same_channel_with_the_rendered_template(hub):
    await text_in(hub, "help, where is my order?")
    await eventually(lambda: _true(len(hub.twilio.sent) == 1))
    sent = hub.twilio.sent[0]
    assert (sent["To"], sent["Body"]) == (CUSTOMER, "고객님, 문의 잘 받았습니다: help, where is my order?")
    done = await actions(hub)
    assert [(a["kind"], a["state"]) for a in done] == [("auto_reply", "done")]
    message = await (await hub.get(f"/v1/messages/{done[0]['outcome']['message_id']}")).json()
    assert message["channel"] == "sms" and message["in_reply_to"] is not None


async def test_a_marketing_send_without_consent_is_kept_failed_with_its_reason(hub):
    await text_in(hub, "promo please")
    await eventually(lambda: _failed(hub))
    [action] = await actions(hub)
    assert action["kind"] == "send_message"
    assert action["outcome"]["error"] == "no_channel"  # the only channel (SMS) has no marketing opt-in
    assert hub.twilio.sent == []


async def _failed(hub) -> bool:
    return any(a["state"] == "failed" for a in await actions(hub))


async def test_post_messages_renders_a_template_and_names_what_is_wrong(hub):
    ok = await hub.post("/v1/messages", json={"to": {"type": "phone", "value": CUSTOMER}, "channel": "sms",
                                              "template": "needs-order", "variables": {"order": "A-17"}})
    assert ok.status == 202, await ok.text()
    await eventually(lambda: _true(len(hub.twilio.sent) == 1))
    assert hub.twilio.sent[0]["Body"] == "주문 A-17"
    unknown = await hub.post("/v1/messages", json={"to": {"type": "phone", "value": CUSTOMER}, "channel": "sms",
                                                   "template": "nope"})
    assert unknown.status == 422
    assert (await unknown.json())["fields"][0]["field"] == "template"
    missing = await hub.post("/v1/messages", json={"to": {"type": "phone", "value": CUSTOMER}, "channel": "sms",
                                                   "template": "needs-order"})
    assert missing.status == 422
    body = await missing.json()
    assert body["fields"][0]["field"] == "variables" and "order" in body["fields"][0]["message"]
    both = await hub.post("/v1/messages", json={"to": {"type": "phone", "value": CUSTOMER}, "channel": "sms",
                                                "template": "needs-order", "text": "x"})
    assert both.status == 422
    assert len(hub.twilio.sent) == 1


async def test_marketing_inside_quiet_hours_waits_and_transactional_does_not(twilio, twilio_config, aiohttp_client,
                                                                             make_settings, tmp_path):
    now = datetime.now(UTC)
    # A window around now in UTC, so the test does not depend on the hour it runs at.
    quiet = {"start": (now - timedelta(hours=1)).strftime("%H:%M"), "end": (now + timedelta(hours=1)).strftime("%H:%M"),
             "timezone": "UTC"}
    hub = await aiohttp_client(create_app(make_settings(
        public_base_url=PUBLIC_BASE_URL, blob_dir=str(tmp_path / "blobs"), adapters={"sms_twilio": twilio_config},
        templates=TEMPLATES, quiet_hours=quiet)))
    hub.twilio = twilio
    await text_in(hub, "hello")
    profile = await (await hub.get(f"/v1/profiles?identifier={quote('phone:' + CUSTOMER)}")).json()
    patched = await hub.patch(f"/v1/profiles/{profile['id']}",
                              json={"consents": {"sms:marketing": {"granted": True}}})
    assert patched.status == 200, await patched.text()
    promo = await hub.post("/v1/messages", json={"profile_id": profile["id"], "channel": "sms", "purpose": "marketing",
                                                 "template": "promo", "variables": {"discount": 20}})
    assert promo.status == 202, await promo.text()
    held = await promo.json()
    assert held["not_before"] is not None
    assert datetime.fromisoformat(held["not_before"]) > now
    # Sent after the promotion and delivered first: the dispatcher passed over the held one.
    notice = await hub.post("/v1/messages", json={"profile_id": profile["id"], "channel": "sms", "text": "발송 안내"})
    assert notice.status == 202
    await eventually(lambda: _true(len(twilio.sent) == 1))
    assert twilio.sent[0]["Body"] == "발송 안내"
    assert (await (await hub.get(f"/v1/messages/{held['id']}")).json())["state"] == "queued"


async def test_rules_naming_an_unconfigured_template_are_loaded_with_a_warning(twilio_config, aiohttp_client,
                                                                                make_settings, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES, encoding="utf-8")
    without_promo = {name: t for name, t in TEMPLATES.items() if name != "promo"}
    hub = await aiohttp_client(create_app(make_settings(
        public_base_url=PUBLIC_BASE_URL, blob_dir=str(tmp_path / "blobs"), adapters={"sms_twilio": twilio_config},
        rules_dir=str(rules), templates=without_promo)))
    warnings = (await (await hub.post("/v1/rules/reload")).json())["warnings"]
    assert len(warnings) == 1 and "[promo-on-first-contact] template 'promo' is not configured" in warnings[0]
