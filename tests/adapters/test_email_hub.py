"""Email end to end through the real hub: smtplib -> listener -> pipeline -> profile timeline;
an agent's reply through POST /v1/messages -> SMTP; the customer's answer in the same thread;
a bounce of our message -> message failed."""

from __future__ import annotations

import email
import smtplib
from email import policy
from pathlib import Path
from urllib.parse import quote

import pytest

from adapters.base import HubUnavailable
from hub import keys
from hub.ingest.pipeline import PipelineStopped
from tests.hub.conftest import eventually

from .email_hub import deliver, start_email_hub

CORPUS = Path(__file__).resolve().parents[1] / "data" / "email"


@pytest.fixture
async def hub(aiohttp_client, make_settings, tmp_path):
    client = await start_email_hub(aiohttp_client, make_settings, tmp_path)
    yield client
    client.smtp_controller.stop()


async def timeline_of(hub, identifier: str) -> list[dict]:
    resp = await hub.get(f"/v1/profiles?identifier={quote(identifier)}")
    assert resp.status == 200, await resp.text()
    pid = (await resp.json())["id"]
    return (await (await hub.get(f"/v1/profiles/{pid}/timeline")).json())["items"]


async def message_state(hub, message_id: str, *wanted: str) -> dict:
    async def check():
        m = await (await hub.get(f"/v1/messages/{message_id}")).json()
        return m if m["state"] in wanted else None
    return await eventually(check, timeout=10)


async def test_mail_in_appears_on_the_customers_timeline_with_its_attachments(hub, tmp_path):
    reply = await deliver(hub, (CORPUS / "05_euc_kr.eml").read_bytes())
    assert reply.startswith("2.0.0 OK")
    [item] = await timeline_of(hub, "email:minji.kim@example.co.kr")  # no waiting: 250 means committed
    assert item["channel"] == "email" and item["subject"] == "배송지 변경 부탁드립니다"
    assert item["conversation_key"] == "email:euckr.20261123140211@mail.example.co.kr"
    await deliver(hub, (CORPUS / "04_nested_mixed.eml").read_bytes())
    [nested] = await timeline_of(hub, "email:dan.lee@example.com")
    stored = [a["storage_ref"] for a in nested["attachments"]]
    assert len(stored) == 2 and all(stored)
    assert sum(1 for p in (tmp_path / "blobs").rglob("*") if p.is_file()) == 2


async def test_agent_reply_and_customer_answer_share_one_conversation(hub):
    await deliver(hub, (CORPUS / "01_plain_ascii.eml").read_bytes())
    [inbound] = await timeline_of(hub, "email:alice@example.com")
    resp = await hub.post("/v1/messages", json={"in_reply_to": inbound["id"], "subject": "Re: Where is my order #1042?",
                                               "text": "It ships today.", "html": "<p>It ships <b>today</b>.</p>"})
    assert resp.status in (200, 202), await resp.text()
    sent_id = (await resp.json())["id"]
    await message_state(hub, sent_id, "sent")
    [(_, rcpts, raw)] = hub.smtp_peer.received
    assert rcpts == ["alice@example.com"]
    ours = email.message_from_bytes(raw, policy=policy.default)
    assert ours["In-Reply-To"] == "<CAF1042.plain@mail.example.com>"
    answer = (f"From: Alice Doe <alice@example.com>\r\nTo: help@shop.example\r\n"
              f"Subject: Re: Re: Where is my order #1042?\r\nMessage-ID: <answer.3@mail.example.com>\r\n"
              f"In-Reply-To: {ours['Message-ID']}\r\nReferences: {ours['References']} {ours['Message-ID']}\r\n"
              f"\r\nGreat, thanks!\r\n").encode()
    await deliver(hub, answer)

    async def three():
        items = await timeline_of(hub, "email:alice@example.com")
        return items if len(items) == 3 else None
    items = await eventually(three, timeout=10)
    assert {i["direction"] for i in items} == {"inbound", "outbound"}
    assert {i["conversation_key"] for i in items} == {"email:CAF1042.plain@mail.example.com"}


async def test_a_bounce_of_our_message_marks_it_failed(hub):
    resp = await hub.post("/v1/messages", json={"channel": "email", "to": {"type": "email", "value": "nobody@example.net"},
                                               "subject": "Your order has shipped", "text": "On its way."})
    sent_id = (await resp.json())["id"]
    sent = await message_state(hub, sent_id, "sent")
    ours = email.message_from_bytes(hub.smtp_peer.received[0][2], policy=policy.default)
    bounce = (CORPUS / "10_bounce_dsn.eml").read_bytes().replace(
        b"<0192aaaa-bbbb-7ccc-8ddd-eeeeffff0000@shop.example>", ours["Message-ID"].encode())
    await deliver(hub, bounce)
    failed = await message_state(hub, sent_id, "failed")
    assert failed["error"]["code"] == "5.1.1" and sent["provider_ref"] == ours["Message-ID"].strip("<>")


async def test_a_permanent_smtp_refusal_fails_the_message(hub):
    hub.smtp_peer.replies = ["550 5.1.1 No such user"]
    resp = await hub.post("/v1/messages", json={"channel": "email", "to": {"type": "email", "value": "gone@example.net"},
                                               "text": "hello"})
    failed = await message_state(hub, (await resp.json())["id"], "failed")
    assert failed["error"]["code"] == "550"


async def test_with_the_pipeline_stopped_the_adapter_sees_hub_unavailable_and_smtp_answers_451(hub):
    pipeline = hub.app[keys.PIPELINE]
    await pipeline.stop()
    try:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            await deliver(hub, (CORPUS / "01_plain_ascii.eml").read_bytes())
        assert refused.value.smtp_code == 451
        adapter = hub.app[keys.ADAPTERS]["email"]
        with pytest.raises(HubUnavailable) as raised:
            await adapter.deps.ingest(adapter.normalize((CORPUS / "01_plain_ascii.eml").read_bytes()))
        assert isinstance(raised.value.__cause__, PipelineStopped)
    finally:
        await pipeline.start()
    assert (await deliver(hub, (CORPUS / "01_plain_ascii.eml").read_bytes())).startswith("2.0.0 OK")
