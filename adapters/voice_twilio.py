"""Phone calls through Twilio Programmable Voice.

Inbound: Twilio POSTs each incoming call to `/channels/voice_twilio/inbound` (the number's "A call
comes in" webhook: CallSid, From, To, CallStatus, Direction...), form-encoded and signed with
X-Twilio-Signature, checked with twilio's RequestValidator against `public_base_url` as for SMS
(adapters/twilio_webhooks.py). The call becomes one `voice` interaction (kind call) from the
caller's number, committed before the hub answers with TwiML: an optional greeting, then the
caller is put in a Twilio queue (`<Enqueue>`), connected to a number or SIP URI (`<Dial>`), or
told a message and hung up on. Twilio retries a webhook it got no answer to, so CallSid is the
dedupe key (https://www.twilio.com/docs/voice/twiml#request-parameters).

Later reports go to `/channels/voice_twilio/status`: the number's "Call status changes" callback
(CallStatus, CallDuration; Twilio sends only `completed`-like statuses for inbound calls unless
told otherwise), and the `action` of our own <Dial> (DialCallStatus: no-answer, busy...; with
recording, RecordingUrl) and <Enqueue> (QueueResult: hangup means the caller gave up waiting).
Each is merged into the call's interaction (deps.update_call): its `call.status`, `duration_s`,
`recording_ref`, and what the queue or dial reported in metadata. The first outcome of an ended
call stays: a dial nobody answered is `no-answer`, even though Twilio then reports the caller's
own leg `completed`. A report for a call the hub never saw (its inbound webhook failed) records
the call from the report.

A caller whose number is withheld (`anonymous`, `+266696687`...) is still recorded, without a
profile; the raw From is kept in `call.from`.

Outbound calls are not placed: send() fails for good (PermanentSendError).

Config keys (`adapters.voice_twilio`): account_sid, auth_token, webhooks_shared_key, greeting,
language, voice, then one of enqueue (a Twilio queue name), dial (a number or `sip:` URI, with
dial_timeout_s and record) or message (said before hanging up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar

from aiohttp import web
from pydantic import Field, SecretStr, StringConstraints, ValidationError, model_validator
from twilio.twiml.voice_response import VoiceResponse

from schemas import CallInfo, CallStatus, Channel, Direction, Identifier, IdentifierType, Interaction, Kind

from .base import (
    AdapterConfig,
    CallUpdate,
    ChannelAdapter,
    ConfigProblem,
    OutboundMessage,
    PayloadError,
    PermanentSendError,
    SendResult,
    Webhook,
)
from .twilio_webhooks import FORM, TwilioSignature

PROVIDER = "twilio"
_STATUSES = frozenset(s.value for s in CallStatus) - {CallStatus.ABANDONED, CallStatus.VOICEMAIL}
# <Dial action>: the dialled party's outcome is the caller's outcome.
_DIAL_STATUS = {"completed": CallStatus.COMPLETED, "answered": CallStatus.COMPLETED, "busy": CallStatus.BUSY,
                "no-answer": CallStatus.NO_ANSWER, "failed": CallStatus.FAILED, "canceled": CallStatus.CANCELED}
# <Enqueue action>: "hangup" is a caller who gave up waiting; "bridged" was answered (completed follows).
_QUEUE_STATUS = {"hangup": CallStatus.ABANDONED, "bridged": CallStatus.IN_PROGRESS}
NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class TwilioVoiceConfig(AdapterConfig):
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr
    webhooks_shared_key: SecretStr | None = None
    greeting: NonEmpty | None = None  # said first
    language: str | None = None  # <Say language>, e.g. ko-KR
    voice: str | None = None  # <Say voice>, e.g. Polly.Seoyeon
    enqueue: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    dial: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    dial_timeout_s: int = Field(20, ge=5, le=600)
    record: bool = False  # record dialled calls; the recording's URL becomes call.recording_ref
    message: NonEmpty | None = None  # with neither enqueue nor dial: said, then the call ends

    @model_validator(mode="after")
    def _one_destination(self) -> TwilioVoiceConfig:
        if self.enqueue and self.dial:
            raise ConfigProblem("dial", "give enqueue or dial, not both")
        if not (self.enqueue or self.dial or self.message or self.greeting):
            raise ConfigProblem("enqueue", "missing: give enqueue, dial or message: what a caller hears")
        return self


class TwilioVoiceAdapter(ChannelAdapter):
    name: ClassVar[str] = "voice_twilio"
    channel: ClassVar[str] = Channel.VOICE.value
    provider: ClassVar[str] = PROVIDER
    Config: ClassVar[type[AdapterConfig]] = TwilioVoiceConfig

    def __init__(self, config: TwilioVoiceConfig, deps) -> None:  # type: ignore[override]
        super().__init__(config, deps)
        self.config: TwilioVoiceConfig = config
        self._signature = TwilioSignature(
            config.auth_token.get_secret_value(),
            config.webhooks_shared_key.get_secret_value() if config.webhooks_shared_key else None)

    def webhooks(self) -> Sequence[Webhook]:
        return (Webhook("POST", "inbound", self._inbound), Webhook("POST", "status", self._status))

    async def authenticate(self, request: web.Request, body: bytes) -> None:
        self._signature.check(request, body, self.deps.public_base_url)

    # --- parsing (pure) ------------------------------------------------------------------------
    def normalize(self, raw: Mapping[str, str]) -> Interaction:
        """The call as an interaction, with what this form says about it (status, duration...)."""
        sid = _call_sid(raw)
        if not raw.get("From"):
            raise PayloadError("From", "missing")
        outbound = (raw.get("Direction") or "inbound").startswith("outbound")
        caller = self._phone(raw["From"])
        callee = self._phone(raw.get("To") or "")
        call = self.call_info(raw)
        try:
            return Interaction.model_validate({
                "channel": self.channel, "direction": Direction.OUTBOUND if outbound else Direction.INBOUND,
                "kind": Kind.CALL, "provider": PROVIDER, "provider_ref": sid, "occurred_at": self.deps.clock(),
                "conversation_key": f"call:{sid}",
                "sender": {"identifiers": [caller] if caller else [],
                           "display_name": _caller_name(raw) if not outbound else None},
                "recipients": [{"identifiers": [callee]}] if callee else [],
                "call": call,
                "metadata": self.call_metadata(raw, account=True),
            }, context=dict(self.deps.validation_context))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise PayloadError(".".join(str(p) for p in err["loc"]) or "body", err["msg"]) from None

    def parse_update(self, raw: Mapping[str, str]) -> CallUpdate:
        """A status callback or a <Dial>/<Enqueue> action as a report on the call."""
        try:
            return CallUpdate(provider_ref=_call_sid(raw), call=self.call_info(raw),
                              metadata=self.call_metadata(raw), occurred_at=self.deps.clock())
        except ValidationError as exc:
            err = exc.errors()[0]
            raise PayloadError(".".join(str(p) for p in err["loc"]) or "body", err["msg"]) from None

    def call_info(self, raw: Mapping[str, str]) -> CallInfo:
        status = _status(raw)
        return CallInfo.model_validate({
            "from": _short(raw.get("From")), "to": _short(raw.get("To")), "status": status,
            "duration_s": _seconds(raw, "CallDuration"),
            "recording_ref": (raw.get("RecordingUrl") or None) and raw["RecordingUrl"][:512],
        })

    def call_metadata(self, raw: Mapping[str, str], *, account: bool = False) -> dict[str, Any]:
        found = {
            "account_sid": raw.get("AccountSid") if account else None,
            "dial_status": raw.get("DialCallStatus"), "dial_duration_s": _seconds(raw, "DialCallDuration"),
            "queue_result": raw.get("QueueResult"), "queue_time_s": _seconds(raw, "QueueTime"),
        }
        return {k: v[:64] if isinstance(v, str) else v for k, v in found.items() if v not in (None, "")}

    def _phone(self, value: str) -> Identifier | None:
        """The number as an identifier, or None for a withheld or non-phone caller (client:, sip:)."""
        try:
            return Identifier.model_validate({"type": IdentifierType.PHONE, "value": value},
                                             context=dict(self.deps.validation_context))
        except ValidationError:
            return None

    # --- webhooks ------------------------------------------------------------------------------
    async def _inbound(self, request: web.Request, body: bytes) -> web.StreamResponse:
        interaction = self.normalize(request[FORM])
        result = await self.deps.ingest(interaction)  # durable before Twilio hears the TwiML
        self.deps.log.info("call in", extra={"interaction_id": str(result.interaction_id), "new": result.created,
                                             "anonymous": not interaction.identifiers()})
        return _twiml(self.answer())

    async def _status(self, request: web.Request, body: bytes) -> web.StreamResponse:
        form = request[FORM]
        update = self.parse_update(form)
        applied = await self.deps.update_call(update)
        if applied is None:  # the inbound webhook never reached us: the report records the call
            interaction = self.normalize(form)
            result = await self.deps.ingest(interaction)
            if not result.created:  # its inbound webhook was committed meanwhile
                await self.deps.update_call(update)
        self.deps.log.info("call report", extra={"status": update.call.status, "known": applied is not None})
        # Twilio runs what an action URL answers; an empty response ends the call after a <Dial>.
        return _twiml(VoiceResponse())

    def answer(self) -> VoiceResponse:
        """The TwiML a caller hears, from the config."""
        c = self.config
        reply = VoiceResponse()
        say = {k: v for k, v in (("language", c.language), ("voice", c.voice)) if v}
        if c.greeting:
            reply.say(c.greeting, **say)
        action = f"{self.deps.public_base_url}/channels/{self.name}/status"
        if c.enqueue:
            reply.enqueue(c.enqueue, action=action, method="POST")
        elif c.dial:
            options: dict[str, Any] = {"action": action, "method": "POST", "timeout": c.dial_timeout_s}
            if c.record:
                options["record"] = "record-from-answer"
            if c.dial.startswith(("sip:", "sips:")):
                reply.dial(**options).sip(c.dial)
            else:
                reply.dial(c.dial, **options)
        elif c.message:
            reply.say(c.message, **say)
            reply.hangup()
        return reply

    async def send(self, message: OutboundMessage) -> SendResult:
        raise PermanentSendError("voice_twilio does not place outbound calls; reach the customer by SMS or email")


def _twiml(reply: VoiceResponse) -> web.Response:
    return web.Response(text=str(reply), content_type="application/xml")


def _call_sid(raw: Mapping[str, str]) -> str:
    sid = (raw.get("CallSid") or "").strip()
    if not sid:
        raise PayloadError("CallSid", "missing")
    if len(sid) > 200 or any(ch.isspace() for ch in sid):
        raise PayloadError("CallSid", "not a Twilio call id")
    return sid


def _status(raw: Mapping[str, str]) -> str | None:
    dial = _DIAL_STATUS.get((raw.get("DialCallStatus") or "").lower())
    if dial is not None:
        return dial.value
    queued = _QUEUE_STATUS.get((raw.get("QueueResult") or "").lower())
    if queued is not None:
        return queued.value
    status = (raw.get("CallStatus") or "").lower()
    return status if status in _STATUSES else None


def _seconds(raw: Mapping[str, str], name: str) -> int | None:
    value = (raw.get(name) or "").strip()
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise PayloadError(name, "not a whole number of seconds")
    return int(value)


def _short(value: str | None) -> str | None:
    return value[:64] if value else None


def _caller_name(raw: Mapping[str, str]) -> str | None:
    name = (raw.get("CallerName") or "").strip()  # Twilio's CNAM lookup, where enabled
    return name[:200] or None
