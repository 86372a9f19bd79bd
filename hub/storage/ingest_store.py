"""The ingest writer's statements: synchronous, batch-shaped, on the caller's Core connection.

They run inside one unit of work per group of interactions: on SQLite on the writer's own thread
with the stdlib driver, on PostgreSQL through AsyncConnection.run_sync. One statement per batch,
not per row, keeps a durable ingest cheap.
"""

from __future__ import annotations

import functools
import json
import operator
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect, Table, insert, select, update

from .models import identifiers, interactions, profile_merges, profiles

RefKey = tuple[str, str, str]  # (channel, provider, provider_ref)
IdentKey = tuple[str, str]  # (type, value)

# Keeps each IN list well under SQLite's bound-parameter limit.
_CHUNK = 500


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def find_interactions_by_ref(conn: Connection, refs: Sequence[RefKey]) -> dict[RefKey, tuple[uuid.UUID, uuid.UUID | None]]:
    # Grouped by (channel, provider) with a plain IN on provider_ref: SQLite answers a row-value
    # IN with a full table scan, but this form searches the unique index on both backends.
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for channel, provider, ref in refs:
        groups[(channel, provider)].append(ref)
    found: dict[RefKey, tuple[uuid.UUID, uuid.UUID | None]] = {}
    cols = interactions.c
    for (channel, provider), provider_refs in groups.items():
        for chunk in _chunks(provider_refs):
            rows = conn.execute(
                select(cols.provider_ref, cols.id, cols.profile_id).where(
                    cols.channel == channel, cols.provider == provider, cols.provider_ref.in_(chunk)
                )
            )
            for ref, iid, pid in rows:
                found[(channel, provider, ref)] = (iid, pid)
    return found


def find_identifiers(conn: Connection, keys: Sequence[IdentKey]) -> dict[IdentKey, uuid.UUID]:
    groups: dict[str, list[str]] = defaultdict(list)
    for kind, value in keys:
        groups[kind].append(value)
    found: dict[IdentKey, uuid.UUID] = {}
    cols = identifiers.c
    for kind, values in groups.items():
        for chunk in _chunks(values):
            for value, pid in conn.execute(select(cols.value, cols.profile_id).where(cols.type == kind, cols.value.in_(chunk))):
                found[(kind, value)] = pid
    return found


def load_profiles(conn: Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    found: dict[uuid.UUID, dict[str, Any]] = {}
    for chunk in _chunks(list(ids)):
        for row in conn.execute(select(profiles).where(profiles.c.id.in_(chunk))).mappings():
            data = dict(row)
            data["attributes"] = json.loads(data["attributes"])
            found[data["id"]] = data
    return found


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows that all have the same keys.

    On a qmark driver (the stdlib sqlite3 of the embedded default) the statement is compiled and
    the columns' bind processors resolved once per table and key set, and the driver gets plain
    tuples: SQLAlchemy's generic per-row parameter processing was a quarter of the writer's time.
    """
    if not rows:
        return
    dialect = conn.dialect
    if dialect.paramstyle != "qmark":
        conn.execute(insert(table), list(rows))
        return
    sql, convert = _compiled_insert(table, tuple(rows[0]), dialect)
    conn.exec_driver_sql(sql, convert(rows))


@functools.lru_cache(maxsize=64)
def _compiled_insert(table: Table, keys: tuple[str, ...], dialect: Dialect) -> tuple[str, Callable[..., list]]:
    columns = [table.c[key] for key in keys]
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        dialect.identifier_preparer.format_table(table),
        ", ".join(dialect.identifier_preparer.format_column(c) for c in columns),
        ", ".join("?" for _ in columns),
    )
    getter = operator.itemgetter(*keys)
    processed = [(i, process) for i, c in enumerate(columns) if (process := c.type.bind_processor(dialect))]

    def convert(rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        # A group's rows share timestamps (created_at = the group's now): convert each value once.
        seen: dict[tuple[int, Any], Any] = {}
        out = []
        for row in rows:
            values = list(getter(row)) if len(keys) > 1 else [getter(row)]
            for i, process in processed:
                value = values[i]
                if value is not None:
                    memo = (i, value)
                    converted = seen.get(memo)
                    if converted is None:
                        converted = seen[memo] = process(value)
                    values[i] = converted
            out.append(tuple(values))
        return out

    return sql, convert


def merge_profiles(conn: Connection, survivor: uuid.UUID, merged: uuid.UUID, *, at: datetime, reason: str) -> dict[str, Any]:
    """Re-point the merged profile's identifiers and interactions to the survivor, with an audit row.

    Returns what moved; the audit row keeps the same so the merge can be undone.
    """
    moved_idents = conn.execute(
        select(identifiers.c.type, identifiers.c.value).where(identifiers.c.profile_id == merged)
        .order_by(identifiers.c.type, identifiers.c.value)
    ).all()
    moved_interactions = [str(i) for (i,) in conn.execute(select(interactions.c.id).where(interactions.c.profile_id == merged))]
    conn.execute(update(identifiers).where(identifiers.c.profile_id == merged).values(profile_id=survivor))
    conn.execute(update(interactions).where(interactions.c.profile_id == merged).values(profile_id=survivor))
    conn.execute(update(profiles).where(profiles.c.id == merged).values(merged_into=survivor, updated_at=at))
    conn.execute(
        update(profiles).where(profiles.c.id == survivor).values(updated_at=at, version=profiles.c.version + 1)
    )
    moved = {"identifiers": [f"{t}:{v}" for t, v in moved_idents], "interactions": moved_interactions}
    conn.execute(
        insert(profile_merges).values(
            id=uuid.uuid4(), survivor_id=survivor, merged_id=merged, merged_at=at, reason=reason, moved=json.dumps(moved)
        )
    )
    return moved
