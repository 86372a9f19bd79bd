"""Named segments (issue 3): profile conditions from config, recomputed when a profile changes.

A segment's condition is a rules `when:` block, compiled by the rules package into one rule per
segment (rules.segments), so segments and rules share one condition language and one set of error
messages. Only the configured names are managed here: a segment a
rule or the API added that config does not name is never touched.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, update

from hub.broker.events import event_row
from hub.storage.batch import insert_rows, load_profiles
from hub.storage.models import outbox, profiles
from rules import Ruleset, evaluate
from rules.segments import SEGMENT_RULE_PREFIX, compile_segments
from schemas import EventType

SEGMENTS = "segments"
# Profile columns rules read as `profile.<name>` and set_profile may write; anything else set by a
# rule is a custom attribute (`attributes.<key>`).
PROFILE_COLUMNS = ("display_name", "given_name", "family_name", "locale", "timezone", "birthday", "owner", "tier")
READ_ONLY = ("segments", "consents", "preferred_channels", "last_purchase_at", "frequency", "monetary",
             "value_score", "created_at", "updated_at")


def profile_view(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What rules and segments see as `profile`: the profile's columns, over its custom attributes.

    Custom attributes are also lifted to the top level (`profile.vip_since`) and stay reachable as
    `profile.attributes.<key>`; a column of the same name wins.
    """
    if row is None:
        return None
    attrs = row.get("attributes") or {}
    view = {**attrs, "attributes": attrs, SEGMENTS: list(row.get(SEGMENTS) or [])}
    for key in (*PROFILE_COLUMNS, *READ_ONLY):
        if row.get(key) is not None and key != SEGMENTS:
            view[key] = row[key]
    view["id"] = str(row["id"])
    return view


class SegmentSet:
    """The configured segments compiled once at start-up; `membership` is then a pure evaluation."""

    def __init__(self, conditions: Mapping[str, Any]) -> None:
        self.names = frozenset(conditions)
        self.ruleset: Ruleset = compile_segments(conditions)

    def __bool__(self) -> bool:
        return bool(self.names)

    def membership(self, profile_row: Mapping[str, Any], now: datetime) -> set[str]:
        """The configured segments whose condition this profile meets."""
        result = evaluate(self.ruleset, EventType.PROFILE_UPDATED.value, profile=profile_view(profile_row), now=now)
        return {name.removeprefix(SEGMENT_RULE_PREFIX) for name in result.matched}

    def recompute(self, profile_row: Mapping[str, Any], now: datetime) -> list[str] | None:
        """The profile's new segment list, or None when membership did not change.

        Unconfigured segments keep their place; configured ones leave, and joiners are appended
        in name order so the list is stable.
        """
        current = list(profile_row.get(SEGMENTS) or [])
        member = self.membership(profile_row, now)
        kept = [s for s in current if s not in self.names or s in member]
        updated = kept + sorted(member - set(current))
        return None if updated == current else updated


def refresh(conn: Connection, segments: SegmentSet | None, ids: Iterable[uuid.UUID], now: datetime) -> dict[uuid.UUID, list[str]]:
    """Recompute the configured segments of these profiles in the caller's transaction.

    One read and at most one executemany for all of them; each profile whose membership changed
    gets a `profile.updated` event with source `segments`. Free when no segment is configured.
    """
    wanted = list(dict.fromkeys(ids))
    if not segments or not wanted:
        return {}
    changed: dict[uuid.UUID, list[str]] = {}
    for pid, row in load_profiles(conn, wanted).items():
        if row["merged_into"] is not None or row["erased_at"] is not None:
            continue
        updated = segments.recompute(row, now)
        if updated is not None:
            changed[pid] = updated
    if changed:
        c = profiles.c
        conn.execute(
            update(profiles).where(c.id == bindparam("pid")).values(
                segments=bindparam("segs"), updated_at=now, version=c.version + 1),
            [{"pid": pid, "segs": json.dumps(segs, ensure_ascii=False)} for pid, segs in changed.items()],
        )
        insert_rows(conn, outbox, [
            event_row(EventType.PROFILE_UPDATED, now=now, subject=pid,
                      data={"profile_id": str(pid), "changed": {SEGMENTS: segs}, "source": "segments"})
            for pid, segs in changed.items()
        ])
    return changed
