"""insert_rows, the group commit's inserts: what goes in comes back, and what does not fit is refused.

On PostgreSQL the rows go in as one INSERT ... SELECT FROM unnest(one array per column); the casts
of those arrays must neither change a value nor cut an over-long one short.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from hub.storage.batch import insert_rows
from hub.storage.models import identifiers, profiles

NOW = datetime(2026, 11, 23, 1, 30, 15, 123456, tzinfo=UTC)


async def test_rows_come_back_as_they_went_in(engine):
    rows = [
        {"id": uuid.uuid4(), "created_at": NOW, "updated_at": NOW, "display_name": name, "attributes": "{}",
         "birthday": birthday, "monetary": monetary, "frequency": n}
        for n, (name, birthday, monetary) in enumerate([("김민지", date(1990, 2, 28), 12.5), (None, None, 0.0)])
    ]
    async with engine.begin() as conn:
        await conn.run_sync(insert_rows, profiles, rows)
    async with engine.connect() as conn:
        stored = {r.id: r for r in await conn.execute(select(profiles))}
    for row in rows:
        got = stored[row["id"]]
        assert (got.display_name, got.birthday, got.monetary, got.frequency, got.created_at) == (
            row["display_name"], row["birthday"], row["monetary"], row["frequency"], NOW)
        assert got.version == 1  # the server's default for a column left out


async def test_an_over_long_value_is_refused_not_cut_short(engine):
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    pid = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.run_sync(insert_rows, profiles, [{"id": pid, "created_at": NOW, "updated_at": NOW}])
    with pytest.raises(DBAPIError, match="too long"):
        async with engine.begin() as conn:
            await conn.run_sync(insert_rows, identifiers, [
                {"type": "x" * 33, "value": "v", "profile_id": pid, "created_at": NOW}])
    async with engine.connect() as conn:
        assert (await conn.execute(select(identifiers))).all() == []
