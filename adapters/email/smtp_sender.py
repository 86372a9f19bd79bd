"""Outbound email: build the MIME message and hand it to our SMTP submission server (aiosmtplib).

Threading: the Message-ID is derived from the hub's message id (`<id@from-domain>`), so a send
the hub retries carries the same id and the recipient's client shows one message; In-Reply-To
and References keep the thread, and the thread's root (from the conversation key) always heads
References, so the customer's next reply yields the same conversation_key as the thread.

Failures: 4xx replies, dropped connections and timeouts are transient and retried here a few
times (adapters.email.retry), then raised as TransientSendError for the hub to retry later; 5xx
replies (unknown mailbox, rejected content, bad credentials) raise PermanentSendError, which the
hub's dispatcher reports as `message.failed`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
from collections.abc import Callable
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP

import aiosmtplib

from adapters.base import (
    MessagePurpose,
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from schemas import Identifier, IdentifierType

from . import threads
from .config import EmailConfig
from .html_text import html_to_text
from .parse import PROVIDER
from .retry import send_retrying

log = logging.getLogger("omnihub.adapters.email.send")
_CTYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")


def _one_line(value: str) -> str:
    return " ".join(value.split())


def thread_ids(message: OutboundMessage) -> tuple[str | None, list[str]]:
    """(In-Reply-To, References) for a message, the thread's root first in References."""
    refs: list[str] = []
    key = message.conversation_key or ""
    if key.startswith(threads.KEY_PREFIX) and not key.startswith(threads.KEY_PREFIX + "sha256:"):
        refs.append(key[len(threads.KEY_PREFIX):])
    for ident in (*message.references, message.in_reply_to):
        ident = threads.normalize_msgid(ident)
        if ident and ident not in refs and threads.is_message_id(ident):
            refs.append(ident)
    in_reply_to = threads.normalize_msgid(message.in_reply_to)
    if in_reply_to is None or not threads.is_message_id(in_reply_to):
        in_reply_to = refs[-1] if refs else None
    return in_reply_to, refs


def build_message(message: OutboundMessage, config: EmailConfig, now: datetime) -> tuple[EmailMessage, str, str]:
    """The MIME message, its Message-ID (without brackets) and its conversation key."""
    if message.to.type is not IdentifierType.EMAIL:
        raise PermanentSendError(f"cannot email a {message.to.type.value} identifier", code="bad_recipient")
    assert config.from_address is not None
    domain = config.from_address.rpartition("@")[2]
    message_id = f"{message.id}@{domain}"
    in_reply_to, refs = thread_ids(message)
    key = threads.conversation_key(threads.thread_root(message_id, in_reply_to, refs))
    assert key is not None

    msg = EmailMessage()
    try:
        local, _, dom = config.from_address.rpartition("@")
        msg["From"] = Address(_one_line(config.from_name or ""), local, dom)
        msg["To"] = message.to.value
        msg["Subject"] = _one_line(message.subject or "")
        msg["Date"] = email.utils.format_datetime(now)
        msg["Message-ID"] = f"<{message_id}>"
        if in_reply_to:
            msg["In-Reply-To"] = f"<{in_reply_to}>"
        if refs:
            msg["References"] = " ".join(f"<{r}>" for r in refs)
        if message.purpose is MessagePurpose.MARKETING:
            _unsubscribe_headers(msg, message, config)
        text = message.text if message.text is not None else html_to_text(message.html or "")
        msg.set_content(text)
        if message.html:
            msg.add_alternative(message.html, subtype="html")
        for att in message.attachments:
            ctype = att.content_type.lower() if _CTYPE.match(att.content_type) else "application/octet-stream"
            maintype, _, subtype = ctype.partition("/")
            msg.add_attachment(att.data, maintype=maintype, subtype=subtype, filename=_one_line(att.filename))
    except (ValueError, TypeError) as exc:  # a header the policy refuses, a bad address part
        raise PermanentSendError(f"cannot build the message: {exc}", code="bad_message") from None
    return msg, message_id, key


def _unsubscribe_headers(msg: EmailMessage, message: OutboundMessage, config: EmailConfig) -> None:
    mailbox = config.unsubscribe_address or config.from_address
    targets = [f"<mailto:{mailbox}?subject=unsubscribe>"]
    if message.unsubscribe_url:
        targets.append(f"<{message.unsubscribe_url}>")
        if message.unsubscribe_url.startswith("https://"):
            # RFC 8058 one-click: mailbox providers POST to the URL instead of opening it.
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["List-Unsubscribe"] = ", ".join(targets)


def classify(exc: BaseException) -> TransientSendError | PermanentSendError:
    """An aiosmtplib (or socket) failure as the adapter's transient/permanent error."""
    match exc:
        case aiosmtplib.SMTPRecipientsRefused(recipients=refused) if refused:
            return _by_code(refused[0].code, refused[0].message)
        case aiosmtplib.SMTPResponseException(code=code, message=text):
            return _by_code(code, text)
        case aiosmtplib.SMTPNotSupported():
            # e.g. starttls required and the server offers none: our configuration, not the message.
            return PermanentSendError(f"SMTP server: {exc}", code="not_supported")
        case aiosmtplib.SMTPException() | OSError() | asyncio.TimeoutError():
            return TransientSendError(f"SMTP connection: {exc!r}", code="connection")
    raise exc


def _by_code(code: int, text: str) -> TransientSendError | PermanentSendError:
    detail = f"SMTP {code} {text}".strip()
    if 400 <= code < 500 or code < 0:  # aiosmtplib uses -1 for "no reply" (connection lost)
        return TransientSendError(detail, code=str(code))
    return PermanentSendError(detail, code=str(code))


class SmtpSender:
    def __init__(self, config: EmailConfig, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.clock = clock

    async def send(self, message: OutboundMessage) -> SendResult:
        config = self.config
        if not config.smtp_host or not config.from_address:
            raise PermanentSendError("outbound email is not configured (smtp_host, from_address)",
                                     code="not_configured")
        msg, message_id, key = build_message(message, config, self.clock())
        async for attempt in send_retrying(config.send_attempts, config.send_retry_wait_s, log):
            with attempt:
                await self._submit(msg, message.to.value)
        return SendResult(provider_ref=message_id, provider=PROVIDER, conversation_key=key,
                          sender=Identifier(type=IdentifierType.EMAIL, value=config.from_address))

    async def _submit(self, msg: EmailMessage, recipient: str) -> None:
        config = self.config
        try:
            await aiosmtplib.send(
                msg.as_bytes(policy=SMTP), sender=config.from_address, recipients=[recipient],
                hostname=config.smtp_host, port=config.smtp_port, username=config.smtp_username,
                password=config.smtp_password.get_secret_value() if config.smtp_password else None,
                use_tls=config.ssl, start_tls=config.starttls, timeout=config.send_timeout_s)
        except Exception as exc:  # every failure is classified; an unknown kind re-raises as is
            raise classify(exc) from exc
