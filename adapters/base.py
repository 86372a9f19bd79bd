"""The interface every channel adapter implements, and what the hub hands it (DESIGN section 2).

An adapter is a class registered under the entry-point group `omnihub.adapters`. Inbound arrives
either through webhooks (`webhooks()`, mounted by the hub under `/channels/<name>/`) or through a
listener or poller the adapter runs between `start()` and `stop()`. Either way the adapter turns the
provider's payload into a `schemas.Interaction` with `normalize()` (pure, no I/O) and hands it to
`deps.ingest`. Outbound, `send()` returns the provider's id for the message.

A channel whose endpoints are not provider webhooks (web chat: a browser's websocket and the
widget's script) declares `routes()` instead: `Route`s mounted at the absolute paths DESIGN section 11
names for them. The hub runs no `authenticate()` before those; the handler checks its caller itself
(a signed visitor id, the Origin). `closing()` runs when the hub starts shutting down, before it
waits for requests under way: an adapter holding long-lived connections closes them there.

Two things are mandatory on every inbound path, and the hub enforces them rather than trusting each
adapter to remember: an authenticity check (a webhook adapter that does not override
`authenticate()` is refused at start-up; a request that fails it gets 403 and writes nothing), and a
dedupe key (`provider_ref`; an Interaction handed to `ingest` without one is an adapter bug and is
refused), so a provider's retry never creates a second interaction.
"""

from __future__ import annotations

import abc
import enum
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from aiohttp import ClientSession, web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas import Attachment, CallInfo, Identifier, Interaction, MetadataValue, OmnihubError


# --- errors ---------------------------------------------------------------------------------------
class AdapterError(OmnihubError):
    """Base of what adapters raise on purpose."""


class PayloadError(AdapterError):
    """A provider payload the adapter cannot turn into an Interaction; names the failing field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


class HubUnavailable(OmnihubError):
    """Raised by the hub's side of AdapterDeps (ingest, report_status, blobs.put) when the hub
    itself cannot take anything right now: the pipeline is stopped, the database or the disk is
    unreachable. Nothing is wrong with the payload; the adapter should retry it later, and must not
    count the failure against the message (an outage must not dead-letter mail). The original
    error is chained as __cause__."""


class AuthenticityError(AdapterError):
    """The request is not provably from the provider (missing or wrong signature): answer 403.

    `checked_url`: the URL a signature over the URL was checked against (Twilio's), without
    credentials or query; the hub logs it, since a wrong public_base_url refuses every webhook."""

    def __init__(self, message: str, *, checked_url: str | None = None) -> None:
        super().__init__(message)
        self.checked_url = checked_url


class SendError(AdapterError):
    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientSendError(SendError):
    """Worth retrying: the provider is down, throttling, or the network failed."""


class PermanentSendError(SendError):
    """Retrying cannot help (bad number, rejected address, opted out at the provider)."""


# --- data exchanged with the hub ------------------------------------------------------------------
class AdapterConfig(BaseModel):
    """Base of each adapter's settings model: frozen, and an unknown key is an error at start-up."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigProblem(ValueError):
    """Raised by a Config model's validator about one of its keys, where pydantic would name only
    the model (a `model_validator` weighing several keys): the hub's refusal then names
    `adapters.<name>.<key>`, the line a user has to fix."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Capabilities:
    """What a channel can carry; the hub degrades what it lacks instead of failing the send."""

    max_text_chars: int | None = None  # longer bodies are split or cut by the adapter
    html: bool = False
    subject: bool = False
    attachments: bool = False


class MessagePurpose(enum.StrEnum):
    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"


class OutboundAttachment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    filename: str
    content_type: str = "application/octet-stream"
    data: bytes


class OutboundMessage(BaseModel):
    """One message to one customer on one channel, as the hub asks an adapter to send it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID  # the hub's message id; adapters pass it to providers that take a client reference
    channel: str
    to: Identifier
    purpose: MessagePurpose = MessagePurpose.TRANSACTIONAL
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    attachments: tuple[OutboundAttachment, ...] = ()
    # Threading: the provider ids of the message this answers and of the thread before it.
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    conversation_key: str | None = None
    unsubscribe_url: str | None = None  # marketing mail carries it as List-Unsubscribe


class SendResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider_ref: str = Field(min_length=1)  # Message-ID, MessageSid...: what status callbacks name
    provider: str
    conversation_key: str | None = None
    sender: Identifier | None = None  # the address or number the message went out from


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    READ = "read"


class StatusUpdate(BaseModel):
    """A provider's report on a message sent earlier (Twilio status callback, a DSN...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider_ref: str = Field(min_length=1)
    status: DeliveryStatus
    # The hub's message id, where the provider echoes it back (a status-callback URL carrying it):
    # the report then finds its message even before the send's provider_ref is stored.
    message_id: uuid.UUID | None = None
    occurred_at: AwareDatetime
    error_code: str | None = None
    error_message: str | None = None


class CallUpdate(BaseModel):
    """What a provider reports later about a call already ingested (Twilio's status callback, a
    PBX's call_ended): the interaction (this adapter's channel and provider, `provider_ref`) gets
    the `call` fields given (None keeps what is stored; a final status such as completed or
    no-answer is never moved back to ringing by a late report) and the `metadata` keys merged in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider_ref: str = Field(min_length=1)
    call: CallInfo
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    occurred_at: AwareDatetime


@dataclass(frozen=True)
class CallUpdated:
    interaction_id: uuid.UUID
    profile_id: uuid.UUID | None
    changed: bool  # False for a repeated or stale report: nothing stored or emitted
    status: str | None = None  # the call's status after the report


class IngestOutcome(Protocol):
    interaction_id: uuid.UUID
    profile_id: uuid.UUID | None
    created: bool


class BlobStore(Protocol):
    async def put(self, data: bytes) -> str:
        """Store the bytes durably and return their storage ref (content-addressed: same bytes, same ref)."""
        ...


class StateStore(Protocol):
    """Small durable values an adapter keeps across restarts (an IMAP poller's last UID)."""

    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, value: str) -> None: ...

    async def update(self, key: str, change: Callable[[str | None], str | None]) -> str | None:
        """Read and write one key as one step, even against other hub processes: `change` gets
        the value (None: unset) and returns the new one (None: keep it); what it raises aborts."""
        ...


async def _no_call_updates(update: CallUpdate) -> CallUpdated | None:
    raise HubUnavailable("this hub does not record call updates")


async def _no_peers(payload: Mapping[str, Any]) -> None:
    return None


@dataclass
class AdapterDeps:
    """What the hub gives an adapter. Adapters reach the hub only through these."""

    ingest: Callable[[Interaction], Awaitable[IngestOutcome]]
    report_status: Callable[[StatusUpdate], Awaitable[bool]]
    blobs: BlobStore
    state: StateStore
    clock: Callable[[], datetime]
    public_base_url: str
    validation_context: Mapping[str, Any]  # pass to Interaction.model_validate (region, channels)
    http: ClientSession | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("omnihub.adapters"))
    # Applies a CallUpdate; None when no interaction of this adapter has that provider_ref yet.
    update_call: Callable[[CallUpdate], Awaitable[CallUpdated | None]] = field(default=_no_call_updates)
    # Hands a JSON payload (up to 256 KiB) to this adapter's `from_peer` in every other hub
    # process: for a socket held by another hub behind the same load balancer. Best effort;
    # raises ValueError for a payload too large (send an id the peer can read instead).
    tell_peers: Callable[[Mapping[str, Any]], Awaitable[None]] = field(default=_no_peers)


@dataclass(frozen=True)
class Webhook:
    """An inbound HTTP route. The hub reads the body, runs `authenticate`, then calls the handler."""

    method: str
    path: str  # relative to /channels/<adapter name>/, unless absolute
    handler: Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]
    # True for a path the design names outside /channels/ (the generic CTI's /v1/cti/events).
    absolute: bool = False


@dataclass(frozen=True)
class Route:
    """An HTTP route at an absolute path (`/v1/chat/ws`), for callers that are not a provider:
    the handler authenticates its caller itself. Only at a path DESIGN section 11 names."""

    method: str
    path: str  # absolute, e.g. /v1/chat/ws
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]


def attachment_for(data: bytes, storage_ref: str, *, filename: str | None, content_type: str) -> Attachment:
    return Attachment(filename=filename, content_type=content_type, size=len(data),
                      sha256=hashlib.sha256(data).hexdigest(), storage_ref=storage_ref)


# --- the interface --------------------------------------------------------------------------------
class ChannelAdapter(abc.ABC):
    name: ClassVar[str]  # equals its entry-point name; routes live under /channels/<name>/
    channel: ClassVar[str]  # a schemas.Channel value, or a plugin's own channel name
    provider: ClassVar[str]  # Interaction.provider for what this adapter ingests
    Config: ClassVar[type[AdapterConfig]] = AdapterConfig
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, config: AdapterConfig, deps: AdapterDeps) -> None:
        self.config = config
        self.deps = deps

    def webhooks(self) -> Sequence[Webhook]:
        return ()

    def routes(self) -> Sequence[Route]:
        return ()

    async def authenticate(self, request: web.Request, body: bytes) -> None:
        """Raise AuthenticityError unless the request provably comes from the provider."""
        raise NotImplementedError

    async def start(self) -> None:
        """Start listeners and pollers (webhook-only adapters have none)."""

    async def from_peer(self, payload: Mapping[str, Any]) -> None:
        """What this adapter in another hub process passed to `deps.tell_peers`."""

    async def closing(self) -> None:
        """The hub is shutting down: close long-lived connections (websockets) so it need not wait for them."""

    async def stop(self) -> None:
        """Stop what start() started; inbound already accepted must be committed first."""

    @abc.abstractmethod
    def normalize(self, raw: Any) -> Interaction:
        """The provider's payload as an Interaction. Pure: no I/O. Raises PayloadError or ValidationError."""

    @abc.abstractmethod
    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one message; raises TransientSendError or PermanentSendError."""

    @classmethod
    def overrides_authenticate(cls) -> bool:
        return cls.authenticate is not ChannelAdapter.authenticate
