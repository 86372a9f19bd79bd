"""The shared customer profile as the API shows it (DESIGN section 4)."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .identifiers import Identifier


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    created_at: AwareDatetime
    updated_at: AwareDatetime
    version: int = 1
    display_name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    birthday: date | None = None
    owner: str | None = None
    tier: str | None = None
    segments: list[str] = Field(default_factory=list)
    identifiers: list[Identifier] = Field(default_factory=list)
    attributes: dict[str, object] = Field(default_factory=dict)
