"""The contact schema: one shape for every interaction on every channel (DESIGN section 3)."""

from __future__ import annotations

import enum
import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from .identifiers import Identifier
from .timestamps import Timestamp

# Pydantic validation context key carrying the channel names the running hub accepts
# (built-ins plus plugin adapters' channels).
CHANNELS_KEY = "channels"

# Metadata key an adapter sets when the customer changes their consent on the channel by writing to
# us (SMS STOP, START): "opt_out" or "opt_in". The hub applies it in the interaction's transaction.
CONSENT_CHANGE_KEY = "consent_change"

_CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_METADATA_KEYS = 64


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"
    VOICE = "voice"
    CHAT = "chat"
    FAX = "fax"
    POS = "pos"


BUILTIN_CHANNELS = frozenset(c.value for c in Channel)


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Kind(enum.StrEnum):
    MESSAGE = "message"
    CALL = "call"
    TRANSACTION = "transaction"
    DOCUMENT = "document"
    EVENT = "event"


ShortText = Annotated[str, StringConstraints(max_length=200)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]
MetadataValue = Annotated[str, StringConstraints(max_length=2048)] | int | float | bool | None


class _Model(BaseModel):
    # Unknown keys are errors: a typo in an integrator's payload should be answered, not dropped.
    model_config = ConfigDict(extra="forbid")


class Party(_Model):
    identifiers: list[Identifier] = Field(default_factory=list, max_length=16)
    display_name: ShortText | None = None


class Content(_Model):
    text: Annotated[str, StringConstraints(max_length=262_144)] | None = None
    html: Annotated[str, StringConstraints(max_length=1_048_576)] | None = None
    language: Annotated[str, StringConstraints(max_length=35)] | None = None


class Attachment(_Model):
    """Metadata only: the bytes live in the content-addressed blob store under `storage_ref`."""

    filename: ShortText | None = None
    content_type: Annotated[str, StringConstraints(max_length=255)] = "application/octet-stream"
    size: Annotated[int, Field(ge=0)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    storage_ref: Annotated[str, StringConstraints(max_length=512)] | None = None


class TransactionItem(_Model):
    sku: Token
    name: ShortText | None = None
    qty: Decimal = Field(default=Decimal(1), gt=0, max_digits=12, decimal_places=3)
    unit_price: Decimal = Field(max_digits=16, decimal_places=4)
    category: ShortText | None = None


class Transaction(_Model):
    store: Token | None = None
    receipt: Token | None = None
    items: list[TransactionItem] = Field(default_factory=list, max_length=500)
    total: Decimal = Field(max_digits=16, decimal_places=4)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    loyalty_id: Token | None = None


class CallStatus(enum.StrEnum):
    """Where a call is. Twilio's CallStatus names (https://www.twilio.com/docs/voice/api/call-resource#call-status-values),
    plus the outcomes a contact center tells apart: abandoned (the caller hung up waiting for an
    agent) and voicemail. CallInfo.status stays a string, so a plugin's own status is stored too."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"
    ABANDONED = "abandoned"
    VOICEMAIL = "voicemail"


_CALL_STATUS_RANK = {CallStatus.QUEUED: 0, CallStatus.INITIATED: 0, CallStatus.RINGING: 1, CallStatus.IN_PROGRESS: 2}


def call_status_rank(status: str | None) -> int:
    """Order of call statuses: -1 none, 0 queued, 1 ringing, 2 in progress, 3 ended (any outcome,
    or a status this module does not know). A report never moves a call to a lower rank, and an
    ended call keeps the first outcome reported (Twilio reports no-answer on the <Dial>, then
    completed for the caller's leg)."""
    if status is None:
        return -1
    return _CALL_STATUS_RANK.get(status, 3)  # type: ignore[call-overload]


class CallInfo(_Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: Annotated[str, StringConstraints(max_length=64)] | None = Field(None, alias="from")
    to: Annotated[str, StringConstraints(max_length=64)] | None = None
    status: Annotated[str, StringConstraints(max_length=32)] | None = None
    duration_s: Annotated[int, Field(ge=0)] | None = None
    recording_ref: Annotated[str, StringConstraints(max_length=512)] | None = None


class Interaction(_Model):
    """One contact with a customer, whatever the channel.

    `id`, `received_at`, `profile_id` and `ruleset_version` are set by the hub; a value sent in by a
    client is replaced.
    """

    id: uuid.UUID | None = None
    channel: str = Field(description="email, sms, voice, chat, fax, pos, or a plugin adapter's channel")
    direction: Direction
    kind: Kind = Kind.MESSAGE
    provider: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    provider_ref: Token | None = Field(
        None, description="The provider's id (Message-ID, MessageSid...); the dedupe key with channel and provider"
    )
    occurred_at: Timestamp
    received_at: Timestamp | None = None
    conversation_key: Annotated[str, StringConstraints(max_length=512)] | None = None
    sender: Party | None = None
    recipients: list[Party] = Field(default_factory=list, max_length=100)
    subject: Annotated[str, StringConstraints(max_length=998)] | None = None
    content: Content | None = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)
    transaction: Transaction | None = None
    call: CallInfo | None = None
    metadata: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], MetadataValue] = Field(
        default_factory=dict
    )
    profile_id: uuid.UUID | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=64)
    priority: Annotated[int, Field(ge=0, le=100)] = 0
    ruleset_version: Annotated[str, StringConstraints(max_length=64)] | None = None

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, v: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get(CHANNELS_KEY, BUILTIN_CHANNELS)
        if not _CHANNEL_NAME.match(v) or v not in known:
            raise ValueError(f"unknown channel {v!r}; known: {', '.join(sorted(known))}")
        return v

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(v) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} keys")
        return v

    def identifiers(self) -> list[Identifier]:
        """The customer's identifiers: the sender's inbound, the recipients' outbound."""
        parties = [self.sender] if self.direction is Direction.INBOUND else self.recipients
        seen: dict[tuple[str, str], Identifier] = {}
        for party in parties:
            if party is not None:
                for ident in party.identifiers:
                    seen.setdefault(ident.key, ident)
        return list(seen.values())

    @property
    def occurred(self) -> datetime:
        return self.occurred_at
