"""Identity resolution for a batch of inbound interactions (DESIGN section 4).

Pure planning against the identifiers the database already knows: no identifier known -> a new
profile; one profile -> attach the unknown identifiers to it; two or more -> merge into the
oldest. Profile ids are UUIDv7, so "oldest" is simply the smallest id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from .ids import new_id

IdentKey = tuple[str, str]


@dataclass(frozen=True)
class Merge:
    survivor: uuid.UUID
    merged: uuid.UUID
    reason: str


@dataclass
class IdentityPlan:
    known: dict[IdentKey, uuid.UUID]
    now: datetime
    new_profiles: dict[uuid.UUID, str | None] = field(default_factory=dict)  # id -> display name
    new_identifiers: dict[IdentKey, uuid.UUID] = field(default_factory=dict)
    merges: list[Merge] = field(default_factory=list)
    _redirect: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)

    def resolve(self, keys: list[IdentKey], display_name: str | None = None) -> uuid.UUID | None:
        """The profile these identifiers belong to, planning creations, attachments and merges."""
        if not keys:
            return None
        owners = sorted({self.final(self.known[k]) for k in keys if k in self.known})
        if not owners:
            profile_id = new_id()
            self.new_profiles[profile_id] = display_name
        else:
            profile_id = owners[0]
            for other in owners[1:]:
                self._merge(profile_id, other, keys)
        for key in keys:
            if key not in self.known:
                self.known[key] = profile_id
                self.new_identifiers[key] = profile_id
        return profile_id

    def final(self, profile_id: uuid.UUID) -> uuid.UUID:
        """Where a profile id ends up once this batch's merges are applied."""
        while profile_id in self._redirect:
            profile_id = self._redirect[profile_id]
        return profile_id

    def is_new(self, profile_id: uuid.UUID) -> bool:
        return profile_id in self.new_profiles

    def _merge(self, survivor: uuid.UUID, merged: uuid.UUID, keys: list[IdentKey]) -> None:
        self._redirect[merged] = survivor
        if merged in self.new_profiles:
            # Created earlier in this same batch: it never reaches the database, nothing to audit.
            del self.new_profiles[merged]
        else:
            shared = ", ".join(sorted(t for t, _ in keys))
            self.merges.append(Merge(survivor, merged, reason=f"shared identifiers ({shared})"))
        for key, owner in self.known.items():
            if owner == merged:
                self.known[key] = survivor
        for key, owner in self.new_identifiers.items():
            if owner == merged:
                self.new_identifiers[key] = survivor
