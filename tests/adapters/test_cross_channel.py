"""One customer, two channels: an email conversation and an SMS conversation, each with the agent's
reply and the customer's answer, land on one profile's timeline as exactly two threads."""

from __future__ import annotations

import email
from collections import defaultdict
from email import policy
from pathlib import Path
from urllib.parse import quote

import pytest

from hub import keys
from hub.app import create_app
from tests.adapters.conftest import PUBLIC_BASE_URL
from tests.adapters.email_hub import PASSWORD, USER, deliver
from tests.adapters.email_support import CapturingHandler, capturing_server
from tests.adapters.fake_twilio import inbound_params
from tests.hub.conftest import eventually

CORPUS = Path(__file__).resolve().parents[1] / "data" / "email"
PHONE = "+821012345678"
INBOUND = "/channels/sms_twilio/inbound"


@pytest.fixture
async def hub(twilio, twilio_config, aiohttp_client, make_settings, tmp_path):
    peer = CapturingHandler()
    controller = capturing_server(peer)
    mail = {"smtp_listen": "127.0.0.1:0", "smtp_auth": {USER: PASSWORD}, "smtp_auth_require_tls": False,
            "smtp_host": "127.0.0.1", "smtp_port": controller.port, "starttls": False,
            "from_address": "help@shop.example", "send_retry_wait_s": 0.01}
    settings = make_settings(public_base_url=PUBLIC_BASE_URL, blob_dir=str(tmp_path / "blobs"),
                             adapters={"email": mail, "sms_twilio": twilio_config})
    client = await aiohttp_client(create_app(settings))
    client.smtp_peer, client.twilio = peer, twilio
    client.listener_port = client.app[keys.ADAPTERS]["email"].listener.port
    yield client
    controller.stop()


async def reply(hub, interaction_id: str, **body) -> None:
    resp = await hub.post("/v1/messages", json={"in_reply_to": interaction_id, **body})
    assert resp.status == 202, await resp.text()
    message_id = (await resp.json())["id"]

    async def sent():
        return (await (await hub.get(f"/v1/messages/{message_id}")).json())["state"] == "sent"
    await eventually(sent, timeout=10)


async def text_in(hub, body: str) -> None:
    params = inbound_params(frm=PHONE, body=body)
    resp = await hub.twilio.post_signed(hub, PUBLIC_BASE_URL + INBOUND, INBOUND, params)
    assert resp.status == 200


async def timeline(hub, pid: str) -> list[dict]:
    return (await (await hub.get(f"/v1/profiles/{pid}/timeline")).json())["items"]


async def test_email_and_sms_replies_land_on_one_profile_in_one_thread_each(hub):
    # The customer signed up in store with both her email and her phone: one profile.
    signup = {"channel": "pos", "direction": "inbound", "kind": "event", "provider": "store-12",
              "provider_ref": "SIGNUP-1", "occurred_at": "2026-11-20T10:00:00+09:00",
              "sender": {"identifiers": [{"type": "email", "value": "alice@example.com"},
                                         {"type": "phone", "value": "010-1234-5678"}]}}
    assert (await hub.post("/v1/interactions", json=signup)).status == 201
    pid = (await (await hub.get(f"/v1/profiles?identifier={quote('phone:' + PHONE)}")).json())["id"]

    # Email: the customer writes, the agent replies, the customer answers in the thread.
    await deliver(hub, (CORPUS / "01_plain_ascii.eml").read_bytes())
    [mail_in] = [i for i in await timeline(hub, pid) if i["channel"] == "email"]
    await reply(hub, mail_in["id"], subject="Re: Where is my order #1042?", text="It ships today.")
    ours = email.message_from_bytes(hub.smtp_peer.received[0][2], policy=policy.default)
    await deliver(hub, (f"From: Alice Doe <alice@example.com>\r\nTo: help@shop.example\r\n"
                        f"Subject: Re: Re: Where is my order #1042?\r\nMessage-ID: <answer.1@mail.example.com>\r\n"
                        f"In-Reply-To: {ours['Message-ID']}\r\nReferences: {ours['References']} {ours['Message-ID']}"
                        f"\r\n\r\nThanks!\r\n").encode())

    # SMS: the same customer texts, the agent replies, she texts again.
    await text_in(hub, "배송지 변경 부탁드립니다")
    [sms_in] = [i for i in await timeline(hub, pid) if i["channel"] == "sms"]
    await reply(hub, sms_in["id"], text="네, 변경해 드렸습니다")
    await text_in(hub, "감사합니다")

    async def settled():
        items = await timeline(hub, pid)
        return items if len(items) == 7 else None
    items = await eventually(settled, timeout=10)
    threads: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for item in reversed(items):  # oldest first
        if item["channel"] in ("email", "sms"):
            threads[item["conversation_key"]].append((item["channel"], item["direction"]))
    assert sorted(threads.values()) == [
        [("email", "inbound"), ("email", "outbound"), ("email", "inbound")],
        [("sms", "inbound"), ("sms", "outbound"), ("sms", "inbound")],
    ]
    assert [m["To"] for m in hub.twilio.sent] == [PHONE]
    assert hub.smtp_peer.received[0][1] == ["alice@example.com"]
