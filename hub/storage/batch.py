"""The ingest writer's statements: synchronous, batch-shaped, on the caller's Core connection.

They run inside one unit of work per group of interactions: on SQLite on the writer's own thread
with the stdlib driver, on PostgreSQL through AsyncConnection.run_sync. One statement per batch,
not per row, keeps a durable ingest cheap.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Dialect,
    String,
    TextualSelect,
    Uuid,
    bindparam,
    insert,
    select,
    text,
    update,
)

from hub.storage.batch_insert import execute_qmark, insert_rows
from hub.storage.models import identifiers, interactions, merge_suggestions, profile_merges, profiles

RefKey = tuple[str, str, str]  # (channel, provider, provider_ref)
IdentKey = tuple[str, str]  # (type, value)

# Keeps each IN list well under SQLite's bound-parameter limit.
_CHUNK = 500


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _select_in(conn: Connection, columns: tuple[Column, ...], equal: tuple[Column, ...], among: Column,
               equal_values: tuple[Any, ...], values: Sequence[Any]) -> Iterable[tuple[Any, ...]]:
    """SELECT columns WHERE each of `equal` = its value AND `among` IN values (once per group commit).

    `equal` + `among` are a unique key: at most one row per value.
    """
    if conn.dialect.paramstyle != "qmark":
        params = {f"e{i}": v for i, v in enumerate(equal_values)} | {"among": list(values)}
        return conn.execute(_lateral_select(columns, equal, among), params)
    # The stdlib driver: the SQL text for this many values is made once, and the driver gets a
    # plain tuple. SQLAlchemy re-rendering the expanding IN on every call cost more than the query.
    sql, processors = _qmark_select(columns, equal, among, len(values), conn.dialect)
    rows = execute_qmark(conn, sql, (*equal_values, *values)).fetchall()
    if not processors:
        return rows
    return [tuple(v if p is None or v is None else p(v) for p, v in zip(processors, row)) for row in rows]


# PostgreSQL's array type for the `among` column's values.
_ARRAY_OF = {String: "VARCHAR[]", Uuid: "UUID[]"}


@functools.lru_cache(maxsize=32)
def _lateral_select(columns: tuple[Column, ...], equal: tuple[Column, ...], among: Column) -> TextualSelect:
    """One lookup of the whole unique key per wanted value, the values as one array parameter.

    `channel = $1 AND provider = $2 AND provider_ref IN ($3, ...)` let PostgreSQL search the unique
    index on (channel, provider) alone and filter provider_ref row by row: a btree path with the IN
    list on a lower column is built both with and without it as an index condition, and a table
    with no statistics yet (a new database, before autovacuum's first ANALYZE) makes the equality
    on channel and provider look selective, so the cheaper-looking path read every row of the
    channel, in custom and cached generic plans alike (20,000 rows: 5,225 buffers, 390 ms a lookup).
    Here the inner query is an equality on every column of the key against one value, so every
    index path it has uses the whole key. LIMIT 1 keeps it a subquery run per value: pulled up
    into a join, the planner could again hash-join a scan of the channel. One array parameter also
    makes one prepared statement whatever the batch's size, where each IN-list length was its own.
    """
    assert all(c.table is among.table for c in (*columns, *equal))
    found = ", ".join(f'found."{c.name}"' for c in columns)
    inner = ", ".join(f'"{c.name}"' for c in columns)
    key = "".join(f'"{c.name}" = :e{i} AND ' for i, c in enumerate(equal))
    array = next(sql for kind, sql in _ARRAY_OF.items() if isinstance(among.type, kind))
    return text(
        f"SELECT {found} FROM unnest(CAST(:among AS {array})) AS wanted(item) "
        f'CROSS JOIN LATERAL (SELECT {inner} FROM "{among.table.name}" '
        f'WHERE {key}"{among.name}" = wanted.item LIMIT 1) AS found'
    ).columns(*columns)


@functools.lru_cache(maxsize=256)
def _qmark_select(columns: tuple[Column, ...], equal: tuple[Column, ...], among: Column, count: int,
                  dialect: Dialect) -> tuple[str, list[Callable[[Any], Any] | None]]:
    name = dialect.identifier_preparer.format_column
    sql = "SELECT {} FROM {} WHERE {}{} IN ({})".format(
        ", ".join(name(c) for c in columns),
        dialect.identifier_preparer.format_table(among.table),
        "".join(f"{name(c)} = ? AND " for c in equal),
        name(among),
        ", ".join("?" * count),
    )
    processors = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
    return sql, processors if any(processors) else []


def find_interactions_by_ref(conn: Connection, refs: Sequence[RefKey]) -> dict[RefKey, tuple[uuid.UUID, uuid.UUID | None]]:
    # Grouped by (channel, provider) with a plain IN on provider_ref: SQLite answers a row-value
    # IN with a full table scan, but this form searches the unique index on both backends.
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for channel, provider, ref in refs:
        groups[(channel, provider)].append(ref)
    found: dict[RefKey, tuple[uuid.UUID, uuid.UUID | None]] = {}
    c = interactions.c
    for (channel, provider), provider_refs in groups.items():
        for chunk in _chunks(provider_refs):
            rows = _select_in(conn, (c.provider_ref, c.id, c.profile_id), (c.channel, c.provider), c.provider_ref,
                              (channel, provider), chunk)
            for ref, iid, pid in rows:
                found[(channel, provider, ref)] = (iid, pid)
    return found


def find_identifiers(conn: Connection, keys: Sequence[IdentKey]) -> dict[IdentKey, uuid.UUID]:
    groups: dict[str, list[str]] = defaultdict(list)
    for kind, value in keys:
        groups[kind].append(value)
    found: dict[IdentKey, uuid.UUID] = {}
    c = identifiers.c
    for kind, values in groups.items():
        for chunk in _chunks(values):
            for value, pid in _select_in(conn, (c.value, c.profile_id), (c.type,), c.value, (kind,), chunk):
                found[(kind, value)] = pid
    return found


# Profile columns stored as JSON text, decoded whenever a row is read.
JSON_FIELDS = ("attributes", "segments", "consents", "preferred_channels")
# The fields a merge combines and an unmerge restores (everything but ids, stamps and version).
FIELDS = ("display_name", "given_name", "family_name", "locale", "timezone", "birthday", "owner", "tier",
          *JSON_FIELDS, "last_purchase_at", "frequency", "monetary", "value_score")


def decode_profile(row: Any) -> dict[str, Any]:
    data = dict(row)
    for name in JSON_FIELDS:
        if name in data:
            data[name] = json.loads(data[name] or ("[]" if name in ("segments", "preferred_channels") else "{}"))
    return data


def load_profiles(conn: Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """Profile rows by id, JSON fields decoded: `owner`, `tier`, `segments`... under their own names."""
    found: dict[uuid.UUID, dict[str, Any]] = {}
    lateral = conn.dialect.paramstyle != "qmark"
    for chunk in _chunks(list(ids)):
        # On PostgreSQL the lookup by key (see _lateral_select): `id IN (...)` could be planned as a
        # scan of the whole table while it looked small, and kept as the statement's generic plan.
        query = (_lateral_select(tuple(profiles.c), (), profiles.c.id) if lateral
                 else select(profiles).where(profiles.c.id.in_(chunk)))
        for row in conn.execute(query, {"among": list(chunk)} if lateral else {}).mappings():
            data = decode_profile(row)
            found[data["id"]] = data
    return found


def find_exclusive(conn: Connection, ids: list[uuid.UUID], types: Iterable[str]) -> dict[uuid.UUID, set[IdentKey]]:
    """The identifiers of `types` (loyalty ids, external ids) these profiles hold."""
    found: dict[uuid.UUID, set[IdentKey]] = defaultdict(set)
    cols = identifiers.c
    rows = conn.execute(select(cols.type, cols.value, cols.profile_id)
                        .where(cols.profile_id.in_(ids), cols.type.in_(list(types))))
    for kind, value, pid in rows:
        found[pid].add((kind, value))
    return found


def insert_suggestions(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store merge suggestions, skipping pairs that already have an open one."""
    if not rows:
        return
    ids = list({r["profile_id"] for r in rows} | {r["other_id"] for r in rows})
    c = merge_suggestions.c
    open_pairs = {frozenset(p) for p in conn.execute(
        select(c.profile_id, c.other_id).where(c.state == "open", c.profile_id.in_(ids), c.other_id.in_(ids)))}
    insert_rows(conn, merge_suggestions, [r for r in rows if frozenset((r["profile_id"], r["other_id"])) not in open_pairs])


def add_purchases(conn: Connection, totals: dict[uuid.UUID, tuple[int, float, datetime | None]], now: datetime,
                  score: Callable[[datetime | None, int, float, datetime], float],
                  tier: Callable[[float, str | None], str | None]) -> dict[uuid.UUID, dict[str, Any]]:
    """Add a batch's POS purchases (count, net sum, latest purchase) to the profiles' RFM; one read,
    one write. Refunds come in as a negative sum (and no count or time when there was no purchase):
    monetary is net spend, never below zero, since a refund of a sale made before the hub knew the
    customer has no purchase here to take back.

    Returns what changed per profile, for the `profile.updated` events.
    """
    c = profiles.c
    changes: dict[uuid.UUID, dict[str, Any]] = {}
    params = []
    rows = conn.execute(select(c.id, c.last_purchase_at, c.frequency, c.monetary, c.tier)
                        .where(c.id.in_(list(totals))))
    for pid, last, frequency, monetary, current_tier in rows:
        count, spent, latest = totals[pid]
        if latest is not None and (last is None or latest > last):
            last = latest
        frequency, monetary = frequency + count, max(0.0, monetary + spent)
        value = score(last, frequency, monetary, now)
        new_tier = tier(value, current_tier)
        changed = {"last_purchase_at": last.isoformat() if last is not None else None, "frequency": frequency,
                   "monetary": monetary, "value_score": value}
        if new_tier != current_tier:
            changed["tier"] = new_tier
        changes[pid] = changed
        params.append({"pid": pid, "last": last, "frequency": frequency, "monetary": monetary,
                       "value_score": value, "tier": new_tier, "now": now})
    if params:
        conn.execute(
            update(profiles).where(c.id == bindparam("pid")).values(
                last_purchase_at=bindparam("last"), frequency=bindparam("frequency"),
                monetary=bindparam("monetary"), value_score=bindparam("value_score"), tier=bindparam("tier"),
                updated_at=bindparam("now"), version=c.version + 1),
            params,
        )
    return changes


def fill_display_names(conn: Connection, names: dict[uuid.UUID, str], now: datetime) -> None:
    """Give these profiles a display name, each only if it still has none."""
    c = profiles.c
    conn.execute(
        update(profiles).where(c.id == bindparam("pid"), c.display_name.is_(None))
        .values(display_name=bindparam("name"), updated_at=bindparam("now"), version=c.version + 1),
        [{"pid": pid, "name": name, "now": now} for pid, name in names.items()],
    )


def merge_profiles(conn: Connection, survivor: uuid.UUID, merged: uuid.UUID, *, at: datetime, reason: str) -> dict[str, Any]:
    """Re-point the merged profile's identifiers and interactions to the survivor, with an audit row.

    The survivor keeps its own field values and takes the merged profile's where it has none
    (lists and maps are united, purchases added up). The audit row keeps the identifiers and
    interactions that moved and both profiles' field values, so hub.profiles.store.unmerge
    can restore them. Returns what moved, for the `profile.merged` event (field names, no values).
    """
    moved_idents = conn.execute(
        select(identifiers.c.type, identifiers.c.value).where(identifiers.c.profile_id == merged)
        .order_by(identifiers.c.type, identifiers.c.value)
    ).all()
    moved_interactions = [str(i) for (i,) in conn.execute(select(interactions.c.id).where(interactions.c.profile_id == merged))]
    rows = load_profiles(conn, [survivor, merged])
    before, after = combine(rows[survivor], rows[merged])
    conn.execute(update(identifiers).where(identifiers.c.profile_id == merged).values(profile_id=survivor))
    conn.execute(update(interactions).where(interactions.c.profile_id == merged).values(profile_id=survivor))
    conn.execute(update(profiles).where(profiles.c.id == merged).values(merged_into=survivor, updated_at=at))
    conn.execute(
        update(profiles).where(profiles.c.id == survivor)
        .values(updated_at=at, version=profiles.c.version + 1, **encode_fields(after))
    )
    moved = {"identifiers": [f"{t}:{v}" for t, v in moved_idents], "interactions": moved_interactions}
    audit = {**moved, "fields": {
        "survivor_before": to_json(before), "survivor_after": to_json(after),
        "merged": to_json({k: rows[merged][k] for k in FIELDS}),
    }}
    conn.execute(
        insert(profile_merges).values(
            id=uuid.uuid4(), survivor_id=survivor, merged_id=merged, merged_at=at, reason=reason,
            moved=json.dumps(audit, ensure_ascii=False),
        )
    )
    return {**moved, "fields": sorted(after)}


def combine(survivor: dict[str, Any], merged: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The survivor's fields that a merge changes: (their values before, their values after)."""
    after: dict[str, Any] = {}
    for name in FIELDS:
        mine, theirs = survivor[name], merged[name]
        match name:
            case "segments" | "preferred_channels":
                value = [*mine, *(x for x in theirs if x not in mine)]
            case "attributes" | "consents":
                value = {**theirs, **mine}
            case "frequency" | "monetary":
                value = mine + theirs
            case "last_purchase_at" | "value_score":
                value = max((v for v in (mine, theirs) if v is not None), default=None)
            case _:
                value = theirs if mine is None else mine
        if value != mine:
            after[name] = value
    return {k: survivor[k] for k in after}, after


def encode_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Column values for an UPDATE: JSON fields as text."""
    return {k: json.dumps(v, ensure_ascii=False) if k in JSON_FIELDS else v for k, v in values.items()}


def to_json(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items()}


def from_json(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if out.get("birthday") is not None:
        out["birthday"] = date.fromisoformat(out["birthday"])
    if out.get("last_purchase_at") is not None:
        out["last_purchase_at"] = datetime.fromisoformat(out["last_purchase_at"])
    return out
