"""SMS and MMS through Twilio Programmable Messaging.

Inbound: Twilio POSTs each message to `/channels/sms_twilio/inbound` and each status change of a
message we sent to `/channels/sms_twilio/status`, form-encoded and signed with X-Twilio-Signature
(https://www.twilio.com/docs/usage/security#validating-requests). The signature covers the URL
Twilio called, so behind a proxy it is checked against `public_base_url` (hub config), not the URL
the hub sees. Twilio retries a webhook it got no answer to, so MessageSid is the dedupe key.
MMS media are fetched from Twilio (basic auth) into the blob store; if that fails the media URLs
are kept in metadata and the message is still taken, since Twilio keeps the media.

Keywords: STOP-like words opt the number out of SMS (consent `sms:marketing` and
`sms:transactional` off), START-like words opt it back in, HELP-like words get the help text; each
is answered with TwiML and still recorded as an interaction. Local equivalents are configurable
(`keywords.opt_out: [수신거부]`).

Outbound: the `twilio` client with its async HTTP client (never the sync one inside the loop);
`api_base` points it elsewhere (tests run it against a local server that plays Twilio's API).

Config keys: account_sid, auth_token, from_number or messaging_service_sid, api_base,
status_callbacks, keywords {opt_out, opt_in, help}, replies {opt_out, opt_in, help}, fetch_media.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from schemas import (
    CONSENT_CHANGE_KEY,
    Channel,
    Content,
    Direction,
    Identifier,
    IdentifierType,
    Interaction,
    Kind,
    Party,
)

from .base import (
    AdapterConfig,
    Capabilities,
    ChannelAdapter,
    ConfigProblem,
    DeliveryStatus,
    OutboundMessage,
    PayloadError,
    PermanentSendError,
    SendResult,
    StatusUpdate,
    TransientSendError,
    Webhook,
    attachment_for,
)
from .twilio_webhooks import FORM, TwilioSignature

PROVIDER = "twilio"
# Twilio's own opt-out keywords (https://help.twilio.com/articles/223134027).
_STOP = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE")
_START = ("START", "YES", "UNSTOP", "OPTIN")
_HELP = ("HELP", "INFO")
_EMPTY_TWIML = str(MessagingResponse())
# The twilio client dumps every request and response at INFO, a dozen lines each (URL, headers):
# as for pika (hub/logs.py), its warnings are what an operator needs.
_TWILIO_HTTP_LOG = logging.getLogger("twilio.async_http_client")
_TWILIO_HTTP_LOG.setLevel(logging.WARNING)
_STATUS = {"sent": DeliveryStatus.SENT, "delivered": DeliveryStatus.DELIVERED, "read": DeliveryStatus.READ,
           "failed": DeliveryStatus.FAILED, "undelivered": DeliveryStatus.FAILED, "canceled": DeliveryStatus.FAILED}


class Keywords(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    opt_out: tuple[str, ...] = ()
    opt_in: tuple[str, ...] = ()
    help: tuple[str, ...] = ()


class Replies(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    opt_out: str = "You are unsubscribed and will receive no more messages. Reply START to resubscribe."
    opt_in: str = "You are resubscribed. Reply STOP to unsubscribe."
    help: str = "Reply STOP to unsubscribe, START to resubscribe."


class TwilioSmsConfig(AdapterConfig):
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr
    # Twilio can sign webhooks with a separate shared key (X-Twilio-Webhooks-Signature-Settings).
    webhooks_shared_key: SecretStr | None = None
    from_number: str | None = None
    messaging_service_sid: str | None = Field(None, pattern=r"^MG[0-9a-fA-F]{32}$")
    api_base: str = "https://api.twilio.com"
    status_callbacks: bool = True
    fetch_media: bool = True
    keywords: Keywords = Keywords()  # local words, on top of Twilio's English ones
    replies: Replies = Replies()

    @field_validator("from_number")
    @classmethod
    def _a_phone_number(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                Identifier(type="phone", value=v)
            except ValidationError:
                raise ValueError("not a phone number; give it with its country code, e.g. +15005550006") from None
        return v

    @model_validator(mode="after")
    def _a_sender(self) -> Self:
        if not (self.from_number or self.messaging_service_sid):
            raise ConfigProblem("from_number", "missing: give from_number or messaging_service_sid, "
                                "what Twilio sends from")
        return self


class TwilioSmsAdapter(ChannelAdapter):
    name: ClassVar[str] = "sms_twilio"
    channel: ClassVar[str] = Channel.SMS.value
    provider: ClassVar[str] = PROVIDER
    Config: ClassVar[type[AdapterConfig]] = TwilioSmsConfig
    capabilities: ClassVar[Capabilities] = Capabilities(max_text_chars=1600, attachments=True)

    def __init__(self, config: TwilioSmsConfig, deps) -> None:  # type: ignore[override]
        super().__init__(config, deps)
        self.config: TwilioSmsConfig = config
        self._signature = TwilioSignature(
            config.auth_token.get_secret_value(),
            config.webhooks_shared_key.get_secret_value() if config.webhooks_shared_key else None)
        self._our_number = (Identifier(type="phone", value=config.from_number).value
                            if config.from_number else None)
        self._words = {
            **{w.casefold(): "opt_out" for w in (*_STOP, *config.keywords.opt_out)},
            **{w.casefold(): "opt_in" for w in (*_START, *config.keywords.opt_in)},
            **{w.casefold(): "help" for w in (*_HELP, *config.keywords.help)},
        }
        self._client: Client | None = None

    # --- inbound -------------------------------------------------------------------------------
    def webhooks(self) -> Sequence[Webhook]:
        return (Webhook("POST", "inbound", self._inbound), Webhook("POST", "status", self._status))

    async def authenticate(self, request: web.Request, body: bytes) -> None:
        self._signature.check(request, body, self.deps.public_base_url)

    def normalize(self, raw: Mapping[str, str]) -> Interaction:
        sid = raw.get("MessageSid") or raw.get("SmsSid")
        if not sid:
            raise PayloadError("MessageSid", "missing")
        if not raw.get("From"):
            raise PayloadError("From", "missing")
        customer = _phone(raw["From"], "From", self.deps.validation_context)
        ours = raw.get("To") or self._our_number
        metadata: dict[str, Any] = {"account_sid": raw.get("AccountSid")}
        for i in range(_media_count(raw)):
            metadata[f"media_url_{i}"] = raw.get(f"MediaUrl{i}")
            metadata[f"media_type_{i}"] = raw.get(f"MediaContentType{i}")
        keyword = self._keyword(raw.get("Body", ""))
        if keyword in ("opt_out", "opt_in"):
            metadata[CONSENT_CHANGE_KEY] = keyword
        try:
            return Interaction.model_validate({
                "channel": self.channel, "direction": Direction.INBOUND, "kind": Kind.MESSAGE,
                "provider": PROVIDER, "provider_ref": sid, "occurred_at": self.deps.clock(),
                "conversation_key": conversation_key(customer, ours),
                "sender": Party(identifiers=[customer]),
                "recipients": [{"identifiers": [{"type": "phone", "value": ours}]}] if ours else [],
                "content": Content(text=raw.get("Body", "")),
                "metadata": {k: v for k, v in metadata.items() if v is not None},
                "tags": [f"sms_{keyword}"] if keyword else [],
            }, context=self.deps.validation_context)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise PayloadError(".".join(str(p) for p in err["loc"]) or "body", err["msg"]) from None

    async def _inbound(self, request: web.Request, body: bytes) -> web.StreamResponse:
        form = request[FORM]
        interaction = self.normalize(form)
        if self.config.fetch_media and _media_count(form):
            interaction.attachments = await self._fetch_media(form)
        await self.deps.ingest(interaction)  # durable before Twilio hears 200
        keyword = self._keyword(form.get("Body", ""))
        if not keyword:
            return web.Response(text=_EMPTY_TWIML, content_type="application/xml")
        reply = MessagingResponse()
        reply.message(getattr(self.config.replies, keyword))
        return web.Response(text=str(reply), content_type="application/xml")

    async def _status(self, request: web.Request, body: bytes) -> web.StreamResponse:
        update = self.parse_status(request[FORM], request.query.get("message_id"))
        if update is not None and not await self.deps.report_status(update):
            self.deps.log.info("status for an unknown message", extra={"provider_ref": update.provider_ref})
        return web.Response(status=204)

    def parse_status(self, form: Mapping[str, str], message_id: str | None = None) -> StatusUpdate | None:
        sid = form.get("MessageSid") or form.get("SmsSid")
        status = _STATUS.get((form.get("MessageStatus") or form.get("SmsStatus") or "").lower())
        if not sid:
            raise PayloadError("MessageSid", "missing")
        if status is None:
            return None  # queued, sending, accepted...: nothing a customer would notice yet
        try:
            return StatusUpdate(provider_ref=sid, status=status, occurred_at=self.deps.clock(),
                                message_id=message_id or None, error_code=form.get("ErrorCode") or None,
                                error_message=form.get("ErrorMessage") or None)
        except ValidationError as exc:
            raise PayloadError("message_id", exc.errors()[0]["msg"]) from None

    def _keyword(self, body: str) -> str | None:
        return self._words.get(body.strip().strip(".!").casefold())

    async def _fetch_media(self, form: Mapping[str, str]):
        auth = {"Authorization": aiohttp.encode_basic_auth(self.config.account_sid,
                                                           self.config.auth_token.get_secret_value())}
        attachments = []
        for i in range(_media_count(form)):
            url = form.get(f"MediaUrl{i}")
            if not url or self.deps.http is None:
                continue
            try:
                async with self.deps.http.get(url, headers=auth, timeout=aiohttp.ClientTimeout(total=8)) as resp:
                    resp.raise_for_status()
                    data = await resp.read()
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                self.deps.log.warning("MMS media not fetched; its URL is kept", extra={"index": i, "error": str(exc)})
                continue
            ref = await self.deps.blobs.put(data)
            content_type = form.get(f"MediaContentType{i}") or resp.content_type or "application/octet-stream"
            attachments.append(attachment_for(data, ref, filename=f"media{i}", content_type=content_type))
        return attachments

    # --- outbound ------------------------------------------------------------------------------
    async def start(self) -> None:
        self._client = Client(self.config.account_sid, self.config.auth_token.get_secret_value(),
                              http_client=AsyncTwilioHttpClient(logger=_TWILIO_HTTP_LOG))
        self._client.api.base_url = self.config.api_base.rstrip("/")

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.http_client.close()  # type: ignore[attr-defined]
            self._client = None

    async def send(self, message: OutboundMessage) -> SendResult:
        if self._client is None:
            raise TransientSendError("the Twilio client is not started")
        kwargs: dict[str, Any] = {"to": message.to.value, "body": _sms_text(message)}
        if self.config.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.config.messaging_service_sid
        else:
            kwargs["from_"] = self.config.from_number
        if self.config.status_callbacks:
            kwargs["status_callback"] = f"{self.deps.public_base_url}/channels/{self.name}/status?message_id={message.id}"
        try:
            sent = await self._client.messages.create_async(**kwargs)
        except TwilioRestException as exc:
            # 429 and 5xx are Twilio's to recover from; any other 4xx (bad number 21211,
            # unsubscribed 21610...) will fail the same way again.
            error = TransientSendError if exc.status == 429 or exc.status >= 500 else PermanentSendError
            raise error(f"Twilio answered {exc.status}: {exc.msg}", code=str(exc.code or exc.status)) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise TransientSendError(f"Twilio unreachable: {exc}") from None
        ours = sent.from_ or self._our_number
        return SendResult(provider_ref=sent.sid, provider=PROVIDER,
                          conversation_key=conversation_key(message.to, ours),
                          sender=Identifier(type="phone", value=ours) if ours else None)


def conversation_key(customer: Identifier, ours: str | None) -> str:
    """One thread per (customer number, our number): what an SMS conversation is."""
    return f"sms:{customer.value}:{ours or '-'}"


def _media_count(form: Mapping[str, str]) -> int:
    try:
        return max(0, min(10, int(form.get("NumMedia") or 0)))  # Twilio sends at most 10
    except ValueError:
        raise PayloadError("NumMedia", "not a number") from None


def _phone(value: str, field: str, context: Mapping[str, Any]) -> Identifier:
    try:
        return Identifier.model_validate({"type": IdentifierType.PHONE, "value": value}, context=dict(context))
    except ValidationError as exc:
        raise PayloadError(field, exc.errors()[0]["msg"]) from None


def _sms_text(message: OutboundMessage) -> str:
    text = message.text or ""
    if not text and message.html:
        text = re.sub(r"<[^>]+>", " ", message.html)
    return text[: TwilioSmsAdapter.capabilities.max_text_chars]
