"""Calls on an on-premise phone system (PBX), reported by its CTI link as signed JSON events.

Inbound: the PBX (or a small bridge beside it) POSTs each call event to `POST /v1/cti/events`,
signed per Standard Webhooks (https://www.standardwebhooks.com/) exactly as the POS is
(adapters/pos.py): `webhook-id`, `webhook-timestamp`, `webhook-signature`, checked with the
standard's reference library, timestamps more than 5 minutes off refused. An event:

    {"type": "call_started" | "call_answered" | "call_ended", "call_id": "pbx-0001",
     "time": "2026-11-23T10:00:00+09:00", "direction": "inbound", "caller": "010-1234-5678",
     "called": "02-555-0100", "agent_extension": "201", "answered_at": ..., "duration_s": 95,
     "disposition": "answered" | "no_answer" | "busy" | "abandoned" | "failed" | "voicemail",
     "recording_url": ...}

Each call is one `voice` interaction (kind call; dedupe key the PBX's call_id), created by the
first event that arrives (normally call_started) and completed by the others through
deps.update_call: call_started is `ringing`, call_answered `in-progress` (with the agent's
extension), call_ended the disposition's outcome (`completed`, `no-answer`, `busy`, `abandoned`...)
with the talk time (`duration_s`, else ended minus answered_at). Events may come twice or out of
order: a repeat changes nothing, a late call_answered never reopens an ended call. The customer
is the caller of an inbound call and the called number of an outbound one; a withheld number
(absent, null, `anonymous`...) is a call without a profile, any other value must be a valid number.

Config keys (`adapters.cti`): secret (`whsec_...`).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar

from aiohttp import web
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from schemas import (
    DEFAULT_REGION_KEY,
    CallInfo,
    CallStatus,
    Channel,
    Direction,
    IdentifierType,
    Interaction,
    Kind,
    normalize_identifier,
)

from .base import (
    AdapterConfig,
    CallUpdate,
    ChannelAdapter,
    OutboundMessage,
    PayloadError,
    PermanentSendError,
    SendResult,
    Webhook,
)
from .standard_webhooks import SignatureCheck, standard_secret

PROVIDER = "cti"
PATH = "/v1/cti/events"
_WITHHELD = frozenset({"", "anonymous", "private", "restricted", "unknown", "unavailable", "withheld"})
Token = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S(.*\S)?$")]
Short = Annotated[str, StringConstraints(max_length=64)]


class EventType(enum.StrEnum):
    CALL_STARTED = "call_started"
    CALL_ANSWERED = "call_answered"
    CALL_ENDED = "call_ended"


class Disposition(enum.StrEnum):
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    ABANDONED = "abandoned"
    FAILED = "failed"
    VOICEMAIL = "voicemail"


_OUTCOME = {Disposition.ANSWERED: CallStatus.COMPLETED, Disposition.NO_ANSWER: CallStatus.NO_ANSWER,
            Disposition.BUSY: CallStatus.BUSY, Disposition.ABANDONED: CallStatus.ABANDONED,
            Disposition.FAILED: CallStatus.FAILED, Disposition.VOICEMAIL: CallStatus.VOICEMAIL}
_STATUS = {EventType.CALL_STARTED: CallStatus.RINGING, EventType.CALL_ANSWERED: CallStatus.IN_PROGRESS}


class CtiEvent(BaseModel):
    """The webhook's JSON body. Unknown keys are refused, so a misspelt field is answered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: EventType
    call_id: Token
    time: AwareDatetime  # when this event happened, with its UTC offset
    direction: Direction = Direction.INBOUND
    caller: Short | None = None
    called: Short | None = None
    agent_extension: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    answered_at: AwareDatetime | None = None
    duration_s: Annotated[int, Field(ge=0, le=7 * 86400)] | None = None
    disposition: Disposition | None = None
    recording_url: Annotated[str, StringConstraints(max_length=512)] | None = None

    @field_validator("caller", "called")
    @classmethod
    def _number(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None or v.strip().lower() in _WITHHELD:
            return None
        customer_side = "caller" if info.data.get("direction", Direction.INBOUND) is Direction.INBOUND else "called"
        try:
            return normalize_identifier(IdentifierType.PHONE, v, (info.context or {}).get(DEFAULT_REGION_KEY))
        except ValueError:
            if info.field_name == customer_side:
                raise ValueError("not a valid phone number (give null for a withheld number)") from None
            return v.strip()  # our side may be an internal extension or trunk name

    @property
    def customer(self) -> str | None:
        return self.caller if self.direction is Direction.INBOUND else self.called

    def status(self) -> str:
        if self.type is EventType.CALL_ENDED:
            return _OUTCOME[self.disposition or Disposition.ANSWERED].value
        return _STATUS[self.type].value

    def talk_time(self) -> int | None:
        if self.duration_s is not None:
            return self.duration_s
        if self.type is EventType.CALL_ENDED:
            if self.answered_at is not None:
                return max(0, int((self.time - self.answered_at).total_seconds()))
            if self.disposition not in (None, Disposition.ANSWERED):
                return 0  # nobody talked
        return None

    def metadata(self) -> dict[str, Any]:
        found = {"agent_extension": self.agent_extension,
                 "answered_at": (self.answered_at or (self.time if self.type is EventType.CALL_ANSWERED else None)),
                 "ended_at": self.time if self.type is EventType.CALL_ENDED else None,
                 "disposition": self.disposition.value if self.disposition else None}
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in found.items() if v is not None}


class CtiConfig(AdapterConfig):
    secret: SecretStr  # whsec_<base64>, shared with the PBX

    @field_validator("secret")
    @classmethod
    def _standard_secret(cls, v: SecretStr) -> SecretStr:
        return standard_secret(v)


class CtiAdapter(ChannelAdapter):
    name: ClassVar[str] = "cti"
    channel: ClassVar[str] = Channel.VOICE.value
    provider: ClassVar[str] = PROVIDER
    Config: ClassVar[type[AdapterConfig]] = CtiConfig

    def __init__(self, config: CtiConfig, deps) -> None:  # type: ignore[override]
        super().__init__(config, deps)
        self.config: CtiConfig = config
        self._signatures = SignatureCheck(config.secret)

    def webhooks(self) -> Sequence[Webhook]:
        return (Webhook("POST", PATH, self._events, absolute=True),)

    async def authenticate(self, request: web.Request, body: bytes) -> None:
        self._signatures.verify(request, body)

    def parse(self, raw: bytes | str | Mapping[str, Any]) -> CtiEvent:
        """Raises ValidationError naming every bad field (invalid JSON as json_invalid)."""
        context = dict(self.deps.validation_context)
        if isinstance(raw, (bytes, str)):
            return CtiEvent.model_validate_json(raw, context=context)
        if not isinstance(raw, Mapping):
            raise PayloadError("body", "a JSON object")
        return CtiEvent.model_validate(raw, context=context)

    def normalize(self, raw: Any) -> Interaction:
        return self.interaction(raw if isinstance(raw, CtiEvent) else self.parse(raw))

    def call_info(self, event: CtiEvent) -> CallInfo:
        return CallInfo.model_validate({"from": event.caller, "to": event.called, "status": event.status(),
                                        "duration_s": event.talk_time(), "recording_ref": event.recording_url})

    def interaction(self, event: CtiEvent) -> Interaction:
        customer = [{"type": "phone", "value": event.customer}] if event.customer else []
        inbound = event.direction is Direction.INBOUND
        return Interaction.model_validate({
            "channel": self.channel, "direction": event.direction, "kind": Kind.CALL, "provider": PROVIDER,
            "provider_ref": event.call_id, "occurred_at": event.time, "conversation_key": f"call:cti:{event.call_id}",
            "sender": {"identifiers": customer} if inbound else None,
            "recipients": [] if inbound else [{"identifiers": customer}],
            "call": self.call_info(event), "metadata": event.metadata(),
        }, context=dict(self.deps.validation_context))

    async def _events(self, request: web.Request, body: bytes) -> web.StreamResponse:
        event = self.parse(body)  # ValidationError: 422 naming every bad field, nothing written
        update = CallUpdate(provider_ref=event.call_id, call=self.call_info(event), metadata=event.metadata(),
                            occurred_at=event.time)
        created = False
        applied = await self.deps.update_call(update)
        if applied is None:  # the call's first event: it becomes the interaction
            result = await self.deps.ingest(self.interaction(event))
            created = result.created
            interaction_id, profile_id = result.interaction_id, result.profile_id
            if not created:  # another event of this call was committed meanwhile
                applied = await self.deps.update_call(update)
        if applied is not None:
            interaction_id, profile_id = applied.interaction_id, applied.profile_id
        self.deps.log.info("cti event", extra={"event": event.type.value, "new": created,
                                               "interaction_id": str(interaction_id)})
        return web.json_response({"id": str(interaction_id), "profile_id": _str(profile_id), "created": created},
                                 status=201 if created else 200)

    async def send(self, message: OutboundMessage) -> SendResult:
        raise PermanentSendError("the CTI link reports calls and cannot place them; reach the customer by SMS or email")


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None

