"""Outbound email against a real SMTP server (aiosmtpd) that captures what it receives."""

from __future__ import annotations

import email
import uuid
from email import policy

import pytest

from adapters.base import (
    MessagePurpose,
    OutboundAttachment,
    OutboundMessage,
    PermanentSendError,
    TransientSendError,
)
from adapters.email.parse import parse
from schemas import Identifier

from .email_support import CapturingHandler, Recorder, capturing_server, free_port, make_adapter, make_deps

CUSTOMER = Identifier(type="email", value="alice@example.com")


def outbound(**kw) -> OutboundMessage:
    kw.setdefault("id", uuid.uuid4())
    return OutboundMessage(channel="email", to=CUSTOMER, **kw)


def sender_for(port: int, **overrides):
    rec = Recorder()
    config = {"smtp_host": "127.0.0.1", "smtp_port": port, "starttls": False,
              "from_address": "help@shop.example", "from_name": "Shop Support",
              "send_attempts": 3, "send_retry_wait_s": 0.01, "send_timeout_s": 5, **overrides}
    return make_adapter(config, make_deps(rec.ingest, rec.report_status))


@pytest.fixture
def server():
    handlers = []

    def start(**kw):
        handler = CapturingHandler(**kw)
        controller = capturing_server(handler)
        handlers.append(controller)
        return handler, controller.port

    yield start
    for controller in handlers:
        controller.stop()


def received(handler, i=-1) -> email.message.EmailMessage:
    return email.message_from_bytes(handler.received[i][2], policy=policy.default)


async def test_a_reply_keeps_the_thread_and_the_customers_next_reply_shares_its_key(server):
    handler, port = server()
    inbound_root = "CAF1042.plain@mail.example.com"
    adapter = sender_for(port)
    result = await adapter.send(outbound(subject="Re: Where is my order #1042?", text="It ships today.",
                                         in_reply_to=inbound_root, conversation_key=f"email:{inbound_root}"))
    assert result.conversation_key == f"email:{inbound_root}"
    assert result.provider == "email" and str(result.sender) == "email:help@shop.example"
    mail_from, rcpts, raw = handler.received[0]
    assert (mail_from, rcpts) == ("help@shop.example", ["alice@example.com"])
    sent = received(handler)
    assert sent["Message-ID"] == f"<{result.provider_ref}>"
    assert sent["In-Reply-To"] == f"<{inbound_root}>"
    assert sent["References"] == f"<{inbound_root}>"
    assert sent["From"] == "Shop Support <help@shop.example>"
    # Our own parser reads our reply into the same conversation...
    assert parse(raw, now=result_time()).interaction.conversation_key == result.conversation_key
    # ...and so the customer's answer to it, References = ours + our Message-ID.
    answer = (f"From: alice@example.com\r\nTo: help@shop.example\r\nSubject: Re: Re: order\r\n"
              f"Message-ID: <answer.2@example.com>\r\nIn-Reply-To: {sent['Message-ID']}\r\n"
              f"References: {sent['References']} {sent['Message-ID']}\r\n\r\nThanks!\r\n").encode()
    assert parse(answer, now=result_time()).interaction.conversation_key == result.conversation_key


async def test_a_deep_thread_keeps_its_root_first_even_when_only_in_reply_to_is_given(server):
    handler, port = server()
    result = await sender_for(port).send(outbound(text="x", in_reply_to="<third@example.com>",
                                                  references=("second@example.com",),
                                                  conversation_key="email:root@example.com"))
    assert received(handler)["References"] == "<root@example.com> <second@example.com> <third@example.com>"
    assert result.conversation_key == "email:root@example.com"


async def test_a_new_message_starts_a_thread_of_its_own(server):
    handler, port = server()
    result = await sender_for(port).send(outbound(subject="Hello", text="x"))
    assert result.conversation_key == f"email:{result.provider_ref}"
    assert "In-Reply-To" not in received(handler) and "References" not in received(handler)


async def test_multipart_text_html_and_attachments(server):
    handler, port = server()
    await sender_for(port).send(outbound(
        subject="영수증 / your receipt", text="Receipt attached.", html="<p>Receipt <b>attached</b>.</p>",
        attachments=(OutboundAttachment(filename="영수증.pdf", content_type="application/pdf", data=b"%PDF-1.4 x"),
                     OutboundAttachment(filename="a.png", content_type="bogus", data=b"\x89PNG"))))
    sent = received(handler)
    assert sent.get_content_type() == "multipart/mixed"
    assert sent["Subject"] == "영수증 / your receipt"
    body = sent.get_body(("plain",))
    assert body.get_content().strip() == "Receipt attached."
    assert sent.get_body(("html",)).get_content().strip() == "<p>Receipt <b>attached</b>.</p>"
    atts = list(sent.iter_attachments())
    assert [(a.get_filename(), a.get_content_type(), a.get_content()) for a in atts] == [
        ("영수증.pdf", "application/pdf", b"%PDF-1.4 x"), ("a.png", "application/octet-stream", b"\x89PNG")]
    assert "List-Unsubscribe" not in sent  # transactional


async def test_html_only_gets_a_text_part_too(server):
    handler, port = server()
    await sender_for(port).send(outbound(subject="s", html="<p>Hello<br>there</p>"))
    sent = received(handler)
    assert sent.get_body(("plain",)).get_content().replace("\r\n", "\n").strip() == "Hello\nthere"


async def test_marketing_mail_carries_list_unsubscribe(server):
    handler, port = server()
    await sender_for(port, unsubscribe_address="unsub@shop.example").send(outbound(
        subject="Sale", text="50% off", purpose=MessagePurpose.MARKETING,
        unsubscribe_url="https://shop.example/u/abc"))
    sent = received(handler)
    # (strip: Python's parser keeps the space of a fold right after the colon; RFC 5322 unfolding doesn't)
    assert sent["List-Unsubscribe"].strip() == "<mailto:unsub@shop.example?subject=unsubscribe>, <https://shop.example/u/abc>"
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    await sender_for(port).send(outbound(subject="Sale", text="x", purpose=MessagePurpose.MARKETING))
    assert received(handler)["List-Unsubscribe"].strip() == "<mailto:help@shop.example?subject=unsubscribe>"


async def test_transient_failure_is_retried_then_succeeds(server):
    handler, port = server(replies=["451 4.3.0 Try again later", "421 4.4.2 Busy"])
    message = outbound(subject="s", text="x")
    result = await sender_for(port).send(message)
    assert handler.attempts == 3 and len(handler.received) == 1
    assert result.provider_ref == f"{message.id}@shop.example"


async def test_transient_failure_that_persists_raises_transient(server):
    handler, port = server(replies=["451 4.3.0 later"] * 5)
    with pytest.raises(TransientSendError) as err:
        await sender_for(port, send_attempts=2).send(outbound(subject="s", text="x"))
    assert err.value.code == "451" and handler.attempts == 2


async def test_permanent_failure_is_not_retried(server):
    handler, port = server(replies=["550 5.7.1 Content rejected"])
    with pytest.raises(PermanentSendError) as err:
        await sender_for(port).send(outbound(subject="s", text="x"))
    assert err.value.code == "550" and handler.attempts == 1 and not handler.received


async def test_unknown_recipient_is_permanent(server):
    _, port = server(refuse_rcpt="550 5.1.1 No such user")
    with pytest.raises(PermanentSendError, match="No such user") as err:
        await sender_for(port).send(outbound(subject="s", text="x"))
    assert err.value.code == "550"


async def test_no_server_is_transient():
    with pytest.raises(TransientSendError):
        await sender_for(free_port(), send_attempts=2).send(outbound(subject="s", text="x"))


async def test_unconfigured_or_wrong_channel_is_permanent():
    rec = Recorder()
    with pytest.raises(PermanentSendError, match="not configured"):
        await make_adapter({}, make_deps(rec.ingest, rec.report_status)).send(outbound(text="x"))
    phone = OutboundMessage(id=uuid.uuid4(), channel="email", text="x",
                            to=Identifier.model_validate({"type": "phone", "value": "+821012345678"}))
    with pytest.raises(PermanentSendError, match="phone"):
        await sender_for(free_port()).send(phone)


def result_time():
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def test_a_reply_to_mail_without_message_id_does_not_reference_its_hash(server):
    handler, port = server()
    digest = "sha256:" + "ab" * 32
    result = await sender_for(port).send(outbound(text="x", in_reply_to=digest, references=(digest,),
                                                  conversation_key=f"email:{digest}"))
    sent = received(handler)
    assert "In-Reply-To" not in sent and "References" not in sent
    assert result.conversation_key == f"email:{result.provider_ref}"
