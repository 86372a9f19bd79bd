"""The shared customer profile as the API shows it, and the partial update it takes (DESIGN section 4)."""

from __future__ import annotations

import functools
import re
import uuid
import zoneinfo
from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from .identifiers import Identifier
from .timestamps import Timestamp

# Consents are kept per (channel, purpose), written "channel:purpose", e.g. "sms:marketing".
CONSENT_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}:[a-z][a-z0-9_.-]{0,63}$")
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]


class Consent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    granted: bool
    at: Timestamp | None = None
    source: Annotated[str, StringConstraints(max_length=100)] | None = None


class Rfm(BaseModel):
    """From POS transactions: recency in days since the last purchase, purchase count, amount spent."""

    recency_days: int | None = None
    last_purchase_at: Timestamp | None = None
    frequency: int = 0
    monetary: float = 0.0


def _check_consents(v: dict[str, Any] | None) -> dict[str, Any] | None:
    for key in v or {}:
        if not CONSENT_KEY.match(key):
            raise ValueError(f"consent key {key!r} must be 'channel:purpose', e.g. 'sms:marketing'")
    return v


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_timezone(v: str | None) -> str | None:
    if v is not None and v not in _timezones():
        raise ValueError(f"unknown time zone {v!r} (IANA name, e.g. Asia/Seoul)")
    return v


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    created_at: Timestamp
    updated_at: Timestamp
    version: int = 1
    display_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    birthday: date | None = None
    owner: str | None = None
    tier: str | None = None
    segments: list[str] = Field(default_factory=list)
    consents: dict[str, Consent] = Field(default_factory=dict)
    preferred_channels: list[str] = Field(default_factory=list)
    identifiers: list[Identifier] = Field(default_factory=list)
    attributes: dict[str, object] = Field(default_factory=dict)
    rfm: Rfm = Field(default_factory=Rfm)
    value_score: float | None = None
    erased_at: Timestamp | None = None


class ProfilePatch(BaseModel):
    """`PATCH /v1/profiles/{id}`: only the fields sent change; null clears a field.

    `attributes` and `consents` are merged key by key (a null value removes the key); lists are
    replaced. RFM and the value score come from transactions and cannot be written.
    """

    model_config = ConfigDict(extra="forbid")

    display_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    given_name: Name | None = None
    family_name: Name | None = None
    locale: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] | None = None
    timezone: str | None = None
    birthday: date | None = None
    owner: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    tier: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    segments: list[Label] | None = Field(None, max_length=100)
    consents: dict[str, Consent | None] | None = None
    preferred_channels: list[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]] | None = Field(
        None, max_length=10)
    attributes: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], Any] | None = None

    @field_validator("consents")
    @classmethod
    def _consent_keys(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_consents(v)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str | None) -> str | None:
        return _check_timezone(v)
