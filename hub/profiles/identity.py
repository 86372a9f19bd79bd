"""Identity resolution for a batch of inbound interactions (DESIGN section 4).

Pure planning against the identifiers the database already knows: no identifier known -> a new
profile; one profile -> attach the unknown identifiers to it; two or more -> merge into the
oldest, when the merge policy allows it, else a merge suggestion and the interaction attaches to
the oldest. Profile ids are UUIDv7, so "oldest" is simply the smallest id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from hub.ids import new_id
from hub.profiles.segments import SegmentSet
from hub.settings import MergePolicySettings, ValueScoreSettings

IdentKey = tuple[str, str]
# Loads the identifiers of the policy's exclusive types that stored profiles hold. Only called
# when a merge is being considered, which is rare: the common batch pays nothing for the policy.
ExclusiveLoader = Callable[[list[uuid.UUID]], dict[uuid.UUID, set[IdentKey]]]


class ProfilePolicy:
    """The merge policy, the value-score scale and the segments, resolved once from settings."""

    def __init__(self, merge: MergePolicySettings | None = None, value: ValueScoreSettings | None = None,
                 segments: SegmentSet | None = None) -> None:
        self.merge = merge or MergePolicySettings()
        self.segments = segments  # None or empty: profile changes recompute nothing
        self.value = value or ValueScoreSettings()
        self.auto_merge_types = frozenset(t.value for t in self.merge.auto_merge_types)
        self.exclusive_types = frozenset(t.value for t in self.merge.exclusive_types)
        # Highest threshold first: the first one reached is the tier.
        self._tiers = sorted(self.value.tiers.items(), key=lambda kv: kv[1], reverse=True)

    def value_score(self, last_purchase_at: datetime | None, frequency: int, monetary: float, now: datetime) -> float:
        v = self.value
        recency = 0.0
        if last_purchase_at is not None:
            days = max(0.0, (now - last_purchase_at).total_seconds() / 86400)
            recency = max(0.0, 1 - days / v.recency_horizon_days)
        frequency_part = min(1.0, frequency / v.frequency_cap)
        monetary_part = min(1.0, max(0.0, monetary) / v.monetary_cap)
        wr, wf, wm = v.weights
        total = (wr + wf + wm) or 1.0
        return round(100 * (wr * recency + wf * frequency_part + wm * monetary_part) / total, 2)

    def tier_for(self, score: float, current: str | None) -> str | None:
        """The tier a score earns; a hand-set tier the config does not know is kept."""
        if current is not None and current not in self.value.tiers:
            return current
        return next((name for name, floor in self._tiers if score >= floor), None)


DEFAULT_POLICY = ProfilePolicy()


@dataclass(frozen=True)
class Merge:
    survivor: uuid.UUID
    merged: uuid.UUID
    reason: str


@dataclass(frozen=True)
class Suggestion:
    profile_id: uuid.UUID  # the older one, where the interaction went
    other_id: uuid.UUID
    reason: str
    identifiers: tuple[str, ...]
    interaction_id: uuid.UUID | None


@dataclass
class IdentityPlan:
    known: dict[IdentKey, uuid.UUID]
    now: datetime
    policy: ProfilePolicy = DEFAULT_POLICY
    load_exclusive: ExclusiveLoader = field(default=lambda ids: {})  # stored profiles hold none
    new_profiles: dict[uuid.UUID, str | None] = field(default_factory=dict)  # id -> display name
    new_identifiers: dict[IdentKey, uuid.UUID] = field(default_factory=dict)
    merges: list[Merge] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)
    _redirect: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    _stored_exclusive: dict[uuid.UUID, set[IdentKey]] = field(default_factory=dict)
    _added_exclusive: dict[uuid.UUID, set[IdentKey]] = field(default_factory=dict)
    _suggested: set[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=set)

    def resolve(self, keys: list[IdentKey], display_name: str | None = None,
                interaction_id: uuid.UUID | None = None) -> uuid.UUID | None:
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
                refusal = self._refusal(profile_id, other, keys)
                if refusal is None:
                    self._merge(profile_id, other, keys)
                else:
                    self._suggest(profile_id, other, keys, refusal, interaction_id)
        for key in keys:
            if key not in self.known:
                self.known[key] = profile_id
                self.new_identifiers[key] = profile_id
                if key[0] in self.policy.exclusive_types:
                    self._added_exclusive.setdefault(profile_id, set()).add(key)
        return profile_id

    def final(self, profile_id: uuid.UUID) -> uuid.UUID:
        """Where a profile id ends up once this batch's merges are applied."""
        while profile_id in self._redirect:
            profile_id = self._redirect[profile_id]
        return profile_id

    def is_new(self, profile_id: uuid.UUID) -> bool:
        return profile_id in self.new_profiles

    def _refusal(self, survivor: uuid.UUID, other: uuid.UUID, keys: list[IdentKey]) -> str | None:
        """Why the policy forbids merging these two, or None when it allows it."""
        allowed = self.policy.auto_merge_types
        for side in (survivor, other):
            linking = {t for t, v in keys if (t, v) in self.known and self.final(self.known[(t, v)]) == side}
            if not linking & allowed:
                return f"no auto-merge identifier type links them ({', '.join(sorted(linking))})"
        if self.policy.exclusive_types:
            mine, theirs = self._exclusive(survivor), self._exclusive(other)
            for kind in sorted(self.policy.exclusive_types):
                if {v for t, v in mine if t == kind} and {v for t, v in theirs if t == kind}:
                    return f"different {kind} on each profile"
        return None

    def _exclusive(self, profile_id: uuid.UUID) -> set[IdentKey]:
        if profile_id not in self._stored_exclusive:
            stored = {} if self.is_new(profile_id) else self.load_exclusive([profile_id])
            self._stored_exclusive[profile_id] = set(stored.get(profile_id, ()))
        return self._stored_exclusive[profile_id] | self._added_exclusive.get(profile_id, set())

    def _suggest(self, kept: uuid.UUID, other: uuid.UUID, keys: Iterable[IdentKey], reason: str,
                 interaction_id: uuid.UUID | None) -> None:
        if (kept, other) in self._suggested:
            return
        self._suggested.add((kept, other))
        self.suggestions.append(Suggestion(kept, other, reason, tuple(f"{t}:{v}" for t, v in keys), interaction_id))

    def _merge(self, survivor: uuid.UUID, merged: uuid.UUID, keys: list[IdentKey]) -> None:
        if self.policy.exclusive_types:
            self._added_exclusive.setdefault(survivor, set()).update(self._exclusive(merged))
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
