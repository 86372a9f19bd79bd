"""In-store point of sale: each completed sale or refund joins the customer's profile and timeline.

Inbound: the store's POS (or its back office) POSTs each transaction as JSON to
`/channels/pos/transactions`, signed per Standard Webhooks (https://www.standardwebhooks.com/):
`webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,` + base64 of
HMAC-SHA256 over `id.timestamp.body`, keyed with the base64 part of a `whsec_` secret). The check is
the standard's reference implementation (the `standardwebhooks` package); it refuses timestamps more
than 5 minutes from the hub's clock, so a captured request cannot be replayed later. Inside those 5
minutes a replay is the same receipt, which the dedupe key answers as a repeat: nothing is written
twice. `omnihub import pos FILE` (hub/ingest/pos_import.py) takes files of the same transactions through
the same mapping.

The dedupe key (provider_ref) is `<store>:<receipt>`: POS systems resend a sale they got no answer
for, and a receipt number is unique within its store (where a POS numbers receipts per register,
send the register in the receipt, e.g. `R2-000123`).

Refunds are transactions with `refund: true` (amounts as printed, not negative) and optionally the
`original_receipt`. In the contact schema a refund's total and unit prices are negative, so lines
and totals are signed money flows that add up; the hub reads a negative total as money returned
(see hub/ingest/batch_write.py: it lowers `monetary`, and neither counts as a visit nor moves recency).

Config keys (`adapters.pos`): secret (`whsec_...`), default_currency (for transactions that carry
none), timezone (an IANA name, for POS clocks that send local times without an offset).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from schemas import (
    DEFAULT_REGION_KEY,
    Channel,
    Direction,
    IdentifierType,
    Interaction,
    Kind,
    normalize_identifier,
)

from .base import (
    AdapterConfig,
    ChannelAdapter,
    OutboundMessage,
    PermanentSendError,
    SendResult,
    Webhook,
)
from .standard_webhooks import SignatureCheck, standard_secret

PROVIDER = "pos"
REFUND_TAG = "pos_refund"
# Validation-context keys: what the payload model needs from the adapter's config.
TIMEZONE_KEY = "pos_timezone"
CURRENCY_KEY = "pos_default_currency"

_STORE = re.compile(r"^[^\s:]{1,64}$")
Token = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S(.*\S)?$")]
Text = Annotated[str, StringConstraints(max_length=200)]


def _not_negative(v: Decimal) -> Decimal:
    if v < 0:
        raise ValueError("must not be negative; a refund is sent with refund: true and the amounts as printed")
    return v


# Bounds as in schemas.TransactionItem / Transaction, so an error names the payload's field.
Money = Annotated[Decimal, Field(max_digits=16, decimal_places=4), AfterValidator(_not_negative)]
Quantity = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=3)]


class PosItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: Token
    name: Text | None = None
    qty: Quantity = Decimal(1)
    unit_price: Money
    category: Text | None = None


class PosCustomer(BaseModel):
    """Whatever the till knows about the buyer; every field optional, each normalized like any
    identifier (phone in E.164 read in the hub's default_region, email lower-cased)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    loyalty_id: str | None = None
    phone: str | None = None
    email: str | None = None
    name: Text | None = None

    @field_validator("loyalty_id", "phone", "email")
    @classmethod
    def _identifier(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None or not v.strip():
            return None
        if len(v) > 320:
            raise ValueError("at most 320 characters")
        kind = IdentifierType(info.field_name)
        return normalize_identifier(kind, v, (info.context or {}).get(DEFAULT_REGION_KEY))

    def identifiers(self) -> list[dict[str, str]]:
        return [{"type": kind, "value": value} for kind in ("loyalty_id", "phone", "email")
                if (value := getattr(self, kind)) is not None]


class PosTransaction(BaseModel):
    """The webhook's JSON body, and one row or line of an import file."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    store: str
    # "register" is also ABCMeta.register on every pydantic model: kept under another name.
    till: Token | None = Field(None, alias="register")
    receipt: Token
    time: datetime  # with an offset, or local time in adapters.pos.timezone
    items: list[PosItem] = Field(default_factory=list, max_length=500)
    total: Money
    # Validated even when absent: the configured default_currency fills it, or it is an error.
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = Field(None, validate_default=True)
    customer: PosCustomer | None = None
    refund: bool = False
    original_receipt: Token | None = None  # after `refund`: its validator reads it

    @field_validator("currency", mode="before")
    @classmethod
    def _upper_or_default(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None or (isinstance(v, str) and not v.strip()):
            v = (info.context or {}).get(CURRENCY_KEY)
            if v is None:
                raise ValueError("required (no adapters.pos.default_currency is configured)")
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("store")
    @classmethod
    def _store_id(cls, v: str) -> str:
        # The part of the dedupe key before the first ':', so it may not contain one.
        if not _STORE.match(v):
            raise ValueError("1-64 characters, no spaces and no ':'")
        return v

    @field_validator("time")
    @classmethod
    def _aware(cls, v: datetime, info: ValidationInfo) -> datetime:
        if v.tzinfo is not None and v.utcoffset() is not None:
            return v
        zone = (info.context or {}).get(TIMEZONE_KEY)
        if zone is None:
            raise ValueError("needs a UTC offset (e.g. +09:00), or set adapters.pos.timezone")
        return v.replace(tzinfo=zone)

    @field_validator("original_receipt")
    @classmethod
    def _only_for_refunds(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and info.data.get("refund") is False:
            raise ValueError("only a refund (refund: true) names an original receipt")
        return v

    @property
    def provider_ref(self) -> str:
        return f"{self.store}:{self.receipt}"


class PosConfig(AdapterConfig):
    secret: SecretStr  # whsec_<base64>, shared with the POS
    default_currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    timezone: str | None = None  # IANA name, e.g. Asia/Seoul

    @field_validator("secret")
    @classmethod
    def _standard_secret(cls, v: SecretStr) -> SecretStr:
        return standard_secret(v)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r} (an IANA name such as Asia/Seoul)") from None
        return v


class PosMapping:
    """The config values the mapping needs; the import command builds one without a secret."""

    def __init__(self, default_currency: str | None = None, timezone: str | None = None,
                 validation_context: Mapping[str, Any] | None = None) -> None:
        self.context: dict[str, Any] = {
            **(validation_context or {}),
            TIMEZONE_KEY: ZoneInfo(timezone) if timezone else None,
            CURRENCY_KEY: default_currency,
        }

    def parse(self, raw: bytes | str | Mapping[str, Any]) -> PosTransaction:
        """A JSON body (bytes/str) or a decoded mapping as a PosTransaction; raises ValidationError
        naming every bad field (invalid JSON included, as pydantic's json_invalid)."""
        if isinstance(raw, (bytes, str)):
            return PosTransaction.model_validate_json(raw, context=self.context)
        return PosTransaction.model_validate(raw, context=self.context)

    def interaction(self, txn: PosTransaction) -> Interaction:
        return to_interaction(txn, self.context)


def to_interaction(txn: PosTransaction, context: Mapping[str, Any]) -> Interaction:
    """The transaction in the contact schema: a refund's amounts negative, so lines add up to the total."""
    sign = Decimal(-1) if txn.refund else Decimal(1)
    customer = txn.customer
    identifiers = customer.identifiers() if customer else []
    # A refund joins its sale's thread when it names the original receipt.
    thread = txn.original_receipt if txn.refund and txn.original_receipt else txn.receipt
    metadata: dict[str, Any] = {"pos_type": "refund" if txn.refund else "sale"}
    if txn.till is not None:
        metadata["register"] = txn.till
    if txn.original_receipt is not None:
        metadata["original_receipt"] = txn.original_receipt
    return Interaction.model_validate({
        "channel": Channel.POS.value, "direction": Direction.INBOUND, "kind": Kind.TRANSACTION,
        "provider": PROVIDER, "provider_ref": txn.provider_ref, "occurred_at": txn.time,
        "conversation_key": f"pos:{txn.store}:{thread}",
        "sender": ({"identifiers": identifiers, "display_name": customer.name}
                   if customer and (identifiers or customer.name) else None),
        "transaction": {
            "store": txn.store, "receipt": txn.receipt, "total": sign * txn.total, "currency": txn.currency,
            "loyalty_id": customer.loyalty_id if customer else None,
            "items": [{"sku": i.sku, "name": i.name, "qty": i.qty, "unit_price": sign * i.unit_price,
                       "category": i.category} for i in txn.items],
        },
        "metadata": metadata,
        "tags": [REFUND_TAG] if txn.refund else [],
    }, context=dict(context))


class PosAdapter(ChannelAdapter):
    name: ClassVar[str] = "pos"
    channel: ClassVar[str] = Channel.POS.value
    provider: ClassVar[str] = PROVIDER
    Config: ClassVar[type[AdapterConfig]] = PosConfig

    def __init__(self, config: PosConfig, deps) -> None:  # type: ignore[override]
        super().__init__(config, deps)
        self.config: PosConfig = config
        self._signatures = SignatureCheck(config.secret)
        self.mapping = PosMapping(config.default_currency, config.timezone, deps.validation_context)

    def webhooks(self) -> Sequence[Webhook]:
        return (Webhook("POST", "transactions", self._transactions),)

    async def authenticate(self, request: web.Request, body: bytes) -> None:
        self._signatures.verify(request, body)

    def normalize(self, raw: Any) -> Interaction:
        return self.mapping.interaction(self.mapping.parse(raw))

    async def _transactions(self, request: web.Request, body: bytes) -> web.StreamResponse:
        txn = self.mapping.parse(body)  # ValidationError: 422 naming every bad field, nothing written
        result = await self.deps.ingest(self.mapping.interaction(txn))  # committed when it returns
        self.deps.log.info("pos transaction", extra={
            "store": txn.store, "refund": txn.refund, "new": result.created,
            "interaction_id": str(result.interaction_id)})
        return web.json_response(
            {"id": str(result.interaction_id), "profile_id": _str(result.profile_id), "created": result.created},
            status=201 if result.created else 200)

    async def send(self, message: OutboundMessage) -> SendResult:
        raise PermanentSendError("a till cannot be sent a message; reach the customer on another channel")


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def error_fields(exc: ValidationError) -> list[tuple[str, str]]:
    """(field, message) per error, as the hub's JSON errors name them."""
    return [(".".join(str(p) for p in err["loc"]) or "body", err["msg"].removeprefix("Value error, "))
            for err in exc.errors(include_url=False, include_input=False)]
