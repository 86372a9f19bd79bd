"""One group commit's unit of work: dedupe -> identity -> steps -> inserts, on one connection.

Synchronous Core code, run inside the transaction the pipeline opens (see hub.ingest.pipeline). It builds
everything afresh from its inputs each time it runs, so a retried batch never sees the effects of
an attempt that was rolled back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from hub.broker.events import event_row
from hub.profiles.identity import DEFAULT_POLICY, IdentityPlan, ProfilePolicy
from hub.profiles.segments import refresh
from hub.storage import batch as store
from hub.storage.models import identifiers, interactions, outbox, profiles
from schemas import Channel, Direction, EventType, IdentifierType, Interaction, normalize_identifier


@dataclass(frozen=True)
class IngestResult:
    interaction_id: uuid.UUID
    profile_id: uuid.UUID | None
    created: bool  # False when this was a repeat of an interaction already stored


Write = Callable[[Connection], None]


@dataclass
class IngestContext:
    """What a step sees and may add to, for one new interaction, inside the unit of work.

    Steps are synchronous and do no I/O of their own (rules are a pure function); what they want
    written goes into `events` and `writes`, applied in the interaction's transaction. They may
    change the interaction's tags, priority and ruleset_version.
    """

    interaction: Interaction
    profile: dict[str, Any] | None
    profile_created: bool
    now: datetime
    actions: list[Any] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)


IngestStep = Callable[[IngestContext], None]


def write_batch(conn: Connection, batch: Sequence[Interaction], steps: Sequence[IngestStep],
                now: datetime, policy: ProfilePolicy = DEFAULT_POLICY) -> list[IngestResult]:
    refs = [_ref(item) for item in batch]
    stored = store.find_interactions_by_ref(conn, refs)
    results: list[IngestResult | None] = [None] * len(batch)
    first_of: dict[store.RefKey, int] = {}
    fresh: list[int] = []
    for i, ref in enumerate(refs):
        if ref in stored:
            iid, pid = stored[ref]
            results[i] = IngestResult(iid, pid, created=False)
        elif ref not in first_of:
            first_of[ref] = i
            fresh.append(i)

    keys_of = {i: _keys(batch[i]) for i in fresh}
    plan = IdentityPlan(
        known=store.find_identifiers(conn, list({k for ks in keys_of.values() for k in ks})), now=now, policy=policy,
        load_exclusive=lambda ids: store.find_exclusive(conn, ids, policy.exclusive_types),
    )
    assigned = [plan.resolve(keys_of[i], _display_name(batch[i]), batch[i].id) for i in fresh]
    profile_ids = [plan.final(pid) if pid else None for pid in assigned]
    existing = {pid for pid in profile_ids if pid and not plan.is_new(pid)}
    names = _names_offered(batch, fresh, profile_ids, existing)
    loaded = store.load_profiles(conn, list(existing)) if existing and (steps or names) else {}
    # A profile made from a contact that gave no name (an SMS) takes the first name a later one
    # gives (an email's From); a name it has is only changed by a person (PATCH) or a rule.
    named = {pid: offer for pid, offer in names.items() if pid in loaded and loaded[pid]["display_name"] is None}
    for pid, (name, _) in named.items():
        loaded[pid]["display_name"] = name  # what the rules see

    profile_rows = [
        {"id": pid, "created_at": now, "updated_at": now, "display_name": name, "attributes": "{}"}
        for pid, name in plan.new_profiles.items()
    ]
    events = [
        event_row(EventType.PROFILE_CREATED, now=now, subject=row["id"],
                  data={"profile_id": str(row["id"]), "display_name": row["display_name"]})
        for row in profile_rows
    ]
    if named:
        store.fill_display_names(conn, {pid: name for pid, (name, _) in named.items()}, now)
        events.extend(
            event_row(EventType.PROFILE_UPDATED, now=now, subject=pid,
                      data={"profile_id": str(pid), "changed": {"display_name": name}, "source": "interaction",
                            "interaction_id": str(iid)})
            for pid, (name, iid) in named.items()
        )
    interaction_rows: list[dict[str, Any]] = []
    writes: list[Write] = []
    purchases: dict[uuid.UUID, tuple[int, float, datetime | None]] = {}
    # Profiles whose segments may have moved: new ones, buyers, merge survivors, rule targets.
    touched: list[uuid.UUID] = [*plan.new_profiles, *(m.survivor for m in plan.merges), *named]
    for i, pid in zip(fresh, profile_ids, strict=True):
        # A copy per attempt: a retried batch must not see the steps' changes twice.
        original = batch[i]
        item = original.model_copy(update={"profile_id": pid, "tags": list(original.tags)})
        ctx = IngestContext(item, loaded.get(pid) if pid else None, pid is not None and plan.is_new(pid), now)
        for step in steps:
            step(ctx)
        document = item.model_dump_json(exclude_none=True, by_alias=True)
        interaction_rows.append(_interaction_row(item, document))
        received = item.direction is Direction.INBOUND
        events.append(event_row(EventType.INTERACTION_RECEIVED if received else EventType.INTERACTION_SENT,
                                now=now, data_json=document, channel=item.channel, subject=pid))
        events.extend(ctx.events)
        writes.extend(ctx.writes)
        if ctx.writes and pid is not None:
            touched.append(pid)
        if item.transaction is not None and pid is not None and received and item.channel == Channel.POS:
            count, spent, latest = purchases.get(pid, (0, 0.0, None))
            total = item.transaction.total
            if total < 0:
                # A refund (adapters/pos.py sends them negative): money back lowers monetary, but it
                # is not a purchase, so it neither counts in frequency nor moves recency.
                purchases[pid] = (count, spent + float(total), latest)
            else:
                at = item.occurred_at if latest is None else max(latest, item.occurred_at)
                purchases[pid] = (count + 1, spent + float(total), at)
        results[i] = IngestResult(item.id, pid, created=True)  # type: ignore[arg-type]

    store.insert_rows(conn, profiles, profile_rows)
    for merge in plan.merges:
        moved = store.merge_profiles(conn, merge.survivor, merge.merged, at=now, reason=merge.reason)
        events.append(event_row(
            EventType.PROFILE_MERGED, now=now, subject=merge.survivor,
            data={"survivor_id": str(merge.survivor), "merged_id": str(merge.merged), "reason": merge.reason, **moved},
        ))
    store.insert_rows(conn, identifiers, [
        {"type": t, "value": v, "profile_id": plan.final(pid), "created_at": now}
        for (t, v), pid in plan.new_identifiers.items()
    ])
    store.insert_rows(conn, interactions, interaction_rows)
    store.insert_suggestions(conn, [
        {"id": uuid.uuid4(), "profile_id": plan.final(s.profile_id), "other_id": plan.final(s.other_id),
         "reason": s.reason, "identifiers": json.dumps(s.identifiers), "interaction_id": s.interaction_id,
         "state": "open", "created_at": now}
        for s in plan.suggestions if plan.final(s.profile_id) != plan.final(s.other_id)
    ])
    if purchases:
        # Per batch: one read and one executemany for every profile that bought something.
        changed = store.add_purchases(conn, purchases, now, policy.value_score, policy.tier_for)
        events.extend(
            event_row(EventType.PROFILE_UPDATED, now=now, subject=pid,
                      data={"profile_id": str(pid), "changed": fields, "source": "pos"})
            for pid, fields in changed.items()
        )
        touched.extend(changed)
    store.insert_rows(conn, outbox, events)
    for write in writes:
        write(conn)
    if policy.segments:
        # After the rules' writes, so a segment can follow what a rule set; one read per batch.
        refresh(conn, policy.segments, (plan.final(pid) for pid in touched), now)

    for i, ref in enumerate(refs):
        if results[i] is None:  # a repeat within this batch: answered as its first
            first = results[first_of[ref]]
            assert first is not None
            results[i] = IngestResult(first.interaction_id, first.profile_id, created=False)
    return results  # type: ignore[return-value]


def _ref(item: Interaction) -> store.RefKey:
    assert item.provider_ref is not None
    return (item.channel, item.provider, item.provider_ref)


def _keys(item: Interaction) -> list[store.IdentKey]:
    keys = [ident.key for ident in item.identifiers()]
    # A receipt's loyalty id names the buyer even when the POS sent no sender identifiers.
    if item.transaction is not None and item.transaction.loyalty_id and item.direction is Direction.INBOUND:
        try:
            key = (IdentifierType.LOYALTY_ID.value,
                   normalize_identifier(IdentifierType.LOYALTY_ID, item.transaction.loyalty_id))
        except ValueError:
            return keys
        if key not in keys:
            keys.append(key)
    return keys


def _names_offered(batch: Sequence[Interaction], fresh: list[int], profile_ids: list[uuid.UUID | None],
                   existing: set[uuid.UUID]) -> dict[uuid.UUID, tuple[str, uuid.UUID]]:
    """The first display name this batch's interactions give each existing profile, with its interaction."""
    offered: dict[uuid.UUID, tuple[str, uuid.UUID]] = {}
    for i, pid in zip(fresh, profile_ids, strict=True):
        name = _display_name(batch[i])
        if name and pid in existing and pid not in offered:
            offered[pid] = (name, batch[i].id)  # type: ignore[assignment]
    return offered


def _display_name(item: Interaction) -> str | None:
    return item.sender.display_name if item.sender is not None and item.direction is Direction.INBOUND else None


def _interaction_row(item: Interaction, document: str) -> dict[str, Any]:
    return {
        "id": item.id, "channel": item.channel, "provider": item.provider, "provider_ref": item.provider_ref,
        "direction": item.direction.value, "kind": item.kind.value, "occurred_at": item.occurred_at,
        "received_at": item.received_at, "conversation_key": item.conversation_key, "profile_id": item.profile_id,
        "priority": item.priority, "ruleset_version": item.ruleset_version, "document": document,
    }
