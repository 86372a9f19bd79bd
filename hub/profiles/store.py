"""The profile API's statements (DESIGN section 4): synchronous Core, run through
AsyncConnection.run_sync so they share hub.storage.batch's merge with the ingest writer.

Every function takes the caller's connection and runs inside the caller's transaction; the
events a change emits go to the outbox in that same transaction.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, or_, select, tuple_, update

from hub.broker.events import event_row
from hub.storage import batch as store
from hub.storage.models import identifiers, interactions, merge_suggestions, outbox, profile_merges, profiles
from hub.storage.outbound_models import messages
from schemas import EventType, OmnihubError
from schemas.timestamps import rfc3339


class ProfileError(OmnihubError):
    pass


class ProfileNotFound(ProfileError):
    pass


class ProfileMerged(ProfileError):
    def __init__(self, survivor: uuid.UUID) -> None:
        super().__init__(f"merged into {survivor}")
        self.survivor = survivor


class ProfileErased(ProfileError):
    pass


class StaleVersion(ProfileError):
    def __init__(self, current: int) -> None:
        super().__init__(f"the profile is at version {current}")
        self.current = current


class NotMerged(ProfileError):
    pass


def _row(conn: Connection, pid: uuid.UUID) -> dict[str, Any] | None:
    return store.load_profiles(conn, [pid]).get(pid)


def live(conn: Connection, pid: uuid.UUID, *, allow_erased: bool = False) -> dict[str, Any]:
    """The profile row, or the reason it cannot be changed (unknown, merged away, erased)."""
    row = _row(conn, pid)
    if row is None:
        raise ProfileNotFound(str(pid))
    if row["merged_into"] is not None:
        raise ProfileMerged(survivor(conn, pid))
    if row["erased_at"] is not None and not allow_erased:
        raise ProfileErased(str(pid))
    return row


def survivor(conn: Connection, pid: uuid.UUID) -> uuid.UUID:
    """Follow merged_into to the profile that holds this customer now."""
    seen = set()
    while pid not in seen:
        seen.add(pid)
        nxt = conn.execute(select(profiles.c.merged_into).where(profiles.c.id == pid)).scalar()
        if nxt is None:
            return pid
        pid = nxt
    return pid


def get(conn: Connection, pid: uuid.UUID) -> dict[str, Any]:
    """The profile with its identifiers (as "type:value" pairs)."""
    row = live(conn, pid, allow_erased=True)
    c = identifiers.c
    row["identifiers"] = [{"type": t, "value": v} for t, v in conn.execute(
        select(c.type, c.value).where(c.profile_id == pid).order_by(c.type, c.value))]
    return row


def find_by_identifier(conn: Connection, key: tuple[str, str]) -> uuid.UUID | None:
    c = identifiers.c
    return conn.execute(select(c.profile_id).where(c.type == key[0], c.value == key[1])).scalar()


# --- timeline ---
TimelineKey = tuple[datetime, uuid.UUID]  # (occurred_at, interaction id): the timeline's order, newest first


def timeline(conn: Connection, pid: uuid.UUID, *, limit: int, after: TimelineKey | None
             ) -> tuple[list[dict[str, Any]], TimelineKey | None]:
    """The profile's interactions on every channel, newest first, keyset-paged on (occurred_at, id):
    a page of documents, and the key of its last one when more follow (None: the last page)."""
    live(conn, pid, allow_erased=True)
    c = interactions.c
    query = select(c.id, c.occurred_at, c.document).where(c.profile_id == pid)
    if after is not None:
        at, iid = after
        query = query.where(or_(c.occurred_at < at, and_(c.occurred_at == at, c.id < iid)))
    rows = conn.execute(query.order_by(c.occurred_at.desc(), c.id.desc()).limit(limit + 1)).all()
    items = []
    for row in rows[:limit]:
        document = json.loads(row.document)
        document["profile_id"] = str(pid)  # merges since ingest re-point the column, not the document
        # Documents stored before times were kept in UTC carry the sender's offset: as datetimes,
        # the answer writes them in UTC like every other time.
        document["occurred_at"] = row.occurred_at
        if isinstance(document.get("received_at"), str):
            document["received_at"] = datetime.fromisoformat(document["received_at"])
        items.append(document)
    more = len(rows) > limit
    return items, (rows[limit - 1].occurred_at, rows[limit - 1].id) if more else None


# --- update ---
def patch(conn: Connection, pid: uuid.UUID, changes: dict[str, Any], *, if_version: int | None,
          now: datetime, source: str = "api") -> dict[str, Any]:
    """Apply a partial update under optimistic concurrency; emits `profile.updated` with what changed."""
    row = live(conn, pid)
    if if_version is not None and row["version"] != if_version:
        raise StaleVersion(row["version"])
    changed: dict[str, Any] = {}
    for name, value in changes.items():
        if name in ("attributes", "consents"):
            merged = dict(row[name])
            for key, item in (value or {}).items():
                if item is None:
                    merged.pop(key, None)
                else:
                    merged[key] = item
            value = merged
        if value != row[name]:
            changed[name] = value
    if not changed:
        return row
    result = conn.execute(
        update(profiles).where(profiles.c.id == pid, profiles.c.version == row["version"])
        .values(updated_at=now, version=row["version"] + 1, **store.encode_fields(changed))
    )
    if result.rowcount != 1:  # another writer got there between our read and our update
        raise StaleVersion(_row(conn, pid)["version"])  # type: ignore[index]
    _emit(conn, EventType.PROFILE_UPDATED, pid, now,
          {"profile_id": str(pid), "changed": store.to_json(changed), "source": source})
    return {**row, **changed, "version": row["version"] + 1, "updated_at": now}


def _emit(conn: Connection, event_type: str, subject: uuid.UUID, now: datetime, data: dict[str, Any]) -> None:
    store.insert_rows(conn, outbox, [event_row(event_type, now=now, subject=subject, data=data)])


# --- merge and unmerge ---
def merge(conn: Connection, a: uuid.UUID, b: uuid.UUID, *, now: datetime, reason: str) -> dict[str, Any]:
    """Merge two profiles into the older (smaller UUIDv7); emits `profile.merged`."""
    if a == b:
        raise ValueError("a profile cannot be merged with itself")
    for pid in (a, b):
        live(conn, pid)
    kept, gone = min(a, b), max(a, b)
    moved = store.merge_profiles(conn, kept, gone, at=now, reason=reason)
    c = merge_suggestions.c
    conn.execute(update(merge_suggestions).where(
        c.state == "open", or_(and_(c.profile_id == kept, c.other_id == gone), and_(c.profile_id == gone, c.other_id == kept))
    ).values(state="merged", resolved_at=now))
    data = {"survivor_id": str(kept), "merged_id": str(gone), "reason": reason, **moved}
    _emit(conn, EventType.PROFILE_MERGED, kept, now, data)
    return data


def unmerge(conn: Connection, pid: uuid.UUID, *, other: uuid.UUID | None, now: datetime) -> dict[str, Any]:
    """Undo a merge from its audit row: identifiers, interactions and field values go back.

    `pid` is either the merged-away profile or the survivor (then `other`, or its latest merge,
    names the one to restore). A survivor field changed since the merge keeps its new value.
    """
    c = profile_merges.c
    query = select(profile_merges).order_by(c.merged_at.desc()).limit(1)
    row = _row(conn, pid)
    if row is None:
        raise ProfileNotFound(str(pid))
    if row["merged_into"] is not None:
        query = query.where(c.merged_id == pid)
    else:
        query = query.where(c.survivor_id == pid, *([c.merged_id == other] if other else []))
    audit = conn.execute(query).mappings().first()
    if audit is None:
        raise NotMerged(f"{pid} has no merge to undo")
    kept, gone = audit["survivor_id"], audit["merged_id"]
    gone_row = _row(conn, gone)
    if gone_row is None or gone_row["merged_into"] is None:
        raise NotMerged(f"{gone} is not merged")
    if gone_row["erased_at"] is not None:
        raise ProfileErased(str(gone))
    moved = json.loads(audit["moved"])
    keys = [tuple(k.split(":", 1)) for k in moved["identifiers"]]
    for chunk in store._chunks(keys):
        conn.execute(update(identifiers).where(tuple_(identifiers.c.type, identifiers.c.value).in_(chunk))
                     .values(profile_id=gone))
    ids = [uuid.UUID(i) for i in moved["interactions"]]
    for chunk in store._chunks(ids):
        conn.execute(update(interactions).where(interactions.c.id.in_(chunk)).values(profile_id=gone))
    fields = moved.get("fields") or {}
    conn.execute(update(profiles).where(profiles.c.id == gone).values(
        merged_into=None, updated_at=now, version=profiles.c.version + 1,
        **store.encode_fields(store.from_json(fields.get("merged", {})))))
    current = _row(conn, kept)
    assert current is not None
    after = store.from_json(fields.get("survivor_after", {}))
    before = store.from_json(fields.get("survivor_before", {}))
    restore = {k: before[k] for k, v in after.items() if current.get(k) == v}
    conn.execute(update(profiles).where(profiles.c.id == kept).values(
        updated_at=now, version=profiles.c.version + 1, **store.encode_fields(restore)))
    data = {"survivor_id": str(kept), "merged_id": str(gone), "merge_id": str(audit["id"]),
            "identifiers": moved["identifiers"], "interactions": moved["interactions"], "fields": sorted(restore)}
    _emit(conn, EventType.PROFILE_UNMERGED, kept, now, data)
    return data


SuggestionKey = tuple[datetime, uuid.UUID]  # (created_at, id): newest first


def suggestions(conn: Connection, *, state: str, limit: int, after: SuggestionKey | None = None
                ) -> tuple[list[dict[str, Any]], SuggestionKey | None]:
    """Merge suggestions in `state`, newest first, keyset-paged like the timeline."""
    c = merge_suggestions.c
    query = select(merge_suggestions).where(c.state == state)
    if after is not None:
        at, sid = after
        query = query.where(or_(c.created_at < at, and_(c.created_at == at, c.id < sid)))
    rows = conn.execute(query.order_by(c.created_at.desc(), c.id.desc()).limit(limit + 1)).mappings().all()
    items = [{**r, "identifiers": json.loads(r["identifiers"])} for r in rows[:limit]]
    more = len(rows) > limit
    return items, (rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if more else None


# --- erasure ---
_ERASED_FIELDS = {"display_name": None, "given_name": None, "family_name": None, "birthday": None,
                  "locale": None, "timezone": None, "attributes": {}, "consents": {}}


def erase(conn: Connection, pid: uuid.UUID, *, now: datetime) -> dict[str, Any]:
    """Remove the customer's personal data, keep the aggregates; emits `profile.erased`.

    Covers the profile and every profile merged into it, their identifiers (dropped, so the same
    number later starts a fresh profile), their interactions' documents, the audit and suggestion
    rows naming their identifiers, and the bodies of their events in the outbox (published ones
    included: the outbox is kept for replay). Segments, tier, owner and RFM stay.
    """
    live(conn, pid)
    ids = _absorbed(conn, pid)
    conn.execute(update(profiles).where(profiles.c.id.in_(ids)).values(
        updated_at=now, version=profiles.c.version + 1, erased_at=now, **store.encode_fields(_ERASED_FIELDS)))
    dropped = conn.execute(delete(identifiers).where(identifiers.c.profile_id.in_(ids))).rowcount
    c = interactions.c
    scrubbed = [{"iid": iid, "b_document": _scrub(json.loads(doc))}
                for iid, doc in conn.execute(select(c.id, c.document).where(c.profile_id.in_(ids)))]
    if scrubbed:
        conn.execute(update(interactions).where(c.id == bindparam("iid"))
                     .values(document=bindparam("b_document"), conversation_key=None), scrubbed)
    m = profile_merges.c
    conn.execute(update(profile_merges).where(or_(m.survivor_id.in_(ids), m.merged_id.in_(ids)))
                 .values(moved=json.dumps({"identifiers": [], "interactions": [], "erased": True})))
    s = merge_suggestions.c
    conn.execute(update(merge_suggestions).where(or_(s.profile_id.in_(ids), s.other_id.in_(ids)))
                 .values(identifiers="[]"))
    # Outbound messages keep their state and counts; the address, body and threading go.
    conn.execute(update(messages).where(messages.c.profile_id.in_(ids))
                 .values(to_value="erased", request="{}"))
    o = outbox.c
    bodies = [{"b_seq": seq, "b_body": _scrub_event(body)}
              for seq, body in conn.execute(select(o.seq, o.body).where(o.subject.in_([str(i) for i in ids])))]
    if bodies:
        conn.execute(update(outbox).where(o.seq == bindparam("b_seq")).values(body=bindparam("b_body")), bodies)
    data = {"profile_id": str(pid), "erased_at": rfc3339(now), "merged_ids": [str(i) for i in ids if i != pid],
            "identifiers_dropped": dropped, "interactions_scrubbed": len(scrubbed)}
    _emit(conn, EventType.PROFILE_ERASED, pid, now, data)
    return data


def _absorbed(conn: Connection, pid: uuid.UUID) -> list[uuid.UUID]:
    """The profile and every profile merged into it, transitively."""
    found, frontier = [pid], [pid]
    while frontier:
        frontier = list(conn.execute(select(profiles.c.id).where(profiles.c.merged_into.in_(frontier))).scalars())
        found.extend(frontier)
    return found


def _scrub(doc: dict[str, Any]) -> str:
    for party in [doc.get("sender"), *doc.get("recipients", [])]:
        if party:
            party["identifiers"] = []
            party.pop("display_name", None)
    for key in ("subject", "conversation_key"):
        doc.pop(key, None)
    if doc.get("content"):
        doc["content"] = {k: v for k, v in doc["content"].items() if k == "language"}
    for attachment in doc.get("attachments", []):
        attachment.pop("filename", None)
    if doc.get("call"):
        doc["call"] = {k: v for k, v in doc["call"].items() if k not in ("from", "to")}
    if doc.get("transaction"):
        doc["transaction"].pop("loyalty_id", None)
    doc["metadata"] = {}
    doc["tags"] = [*doc.get("tags", []), "erased"] if "erased" not in doc.get("tags", []) else doc["tags"]
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _scrub_event(body: str) -> str:
    event = json.loads(body)
    event["data"] = {"erased": True}
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))

