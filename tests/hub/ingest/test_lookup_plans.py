"""On PostgreSQL the ingest's lookups (dedupe by provider ref, identifiers, profiles) stay key lookups
while the tables grow from empty, with no ANALYZE.

A new database has no statistics until autovacuum's first ANALYZE (the test switches autovacuum
off so that state holds throughout), and a prepared statement keeps the plan it settled on after
its first executions. Lookups that once read every row of their channel grew slower with every
row (bench/ingest.py --postgres fell from 1,095 to 407 req/s in 40 s). The plans are read with
auto_explain on the pipeline's own connection, so they are the ones its prepared statements run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from hub.ingest.pipeline import Pipeline
from hub.storage.engine import create_engine
from hub.storage.migrate import upgrade
from schemas import DEFAULT_REGION_KEY, Interaction
from tests import services
from tests.hub.payloads import sms

pytestmark = pytest.mark.postgres

ROWS = 5000  # enough for a plan that filters to read thousands of index entries per lookup
GROUP = 100
TABLES = ("interactions", "identifiers", "profiles")
# A key lookup in a two- or three-level btree reads its pages plus the row's heap page.
BUFFERS_PER_KEY = 5


def phone(n: int) -> str:
    return f"010-{2000 + n // 10000:04d}-{n % 10000:04d}"


def interaction(payload: dict[str, Any]) -> Interaction:
    return Interaction.model_validate(payload, context={DEFAULT_REGION_KEY: "KR"})


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


@pytest.fixture(params=["new", "vacuumed while empty"])
async def empty_engine(request):
    url = services.create_pg_database(f"_plans{request.param_index}")
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in TABLES:
                await conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
                if request.param == "vacuumed while empty":
                    # Statistics that say "empty" (an operator's VACUUM of a new database): plans made
                    # now scan the tables whole, and a cached one would go on doing so as they fill.
                    await conn.execute(text(f"VACUUM {table}"))
            stats = await conn.execute(text(
                "SELECT count(*) FROM pg_stats WHERE tablename IN ('interactions', 'identifiers', 'profiles')"))
            assert stats.scalar_one() == 0  # never analyzed
        yield engine
    finally:
        await engine.dispose()
        services.drop_pg_database(url)


async def explain_next_group(engine, pipeline: Pipeline, items: list[Interaction]) -> list[dict[str, Any]]:
    """Ingest `items` as one group with auto_explain on, and return the plans its SELECTs ran."""
    assert engine.pool.checkedin() == 1  # the pipeline's connection: its prepared statements, its plans
    notices: list[str] = []

    def listen(_conn, message) -> None:
        notices.append(message.message)

    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        driver.add_log_listener(listen)
        for setting in ("LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
                        "SET auto_explain.log_analyze = on", "SET auto_explain.log_buffers = on",
                        "SET auto_explain.log_format = json", "SET auto_explain.log_level = notice"):
            await conn.exec_driver_sql(setting)
        await conn.commit()
    try:
        results = await asyncio.gather(*(pipeline.ingest(item) for item in items))
        assert pipeline.batches_committed and all(r.interaction_id for r in results)
    finally:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SET auto_explain.log_min_duration = -1")
            await conn.commit()
        driver.remove_log_listener(listen)
    plans = [json.loads(n.split("plan:", 1)[1]) for n in notices if "plan:" in n]
    return [p for p in plans if p["Query Text"].lstrip().upper().startswith("SELECT")]


async def test_lookups_read_a_few_pages_per_key_after_the_tables_grew_from_empty(empty_engine):
    engine = empty_engine
    # A step, so that profiles already known are loaded for it (the returning-customer path).
    pipeline = Pipeline(engine, steps=[lambda ctx: None], batch_max=GROUP)
    await pipeline.start()
    try:
        # Groups of growing size first: each IN-list length used to be a prepared statement of its own.
        sizes = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89]
        done = 0
        while done < ROWS:
            size = sizes[done % len(sizes)] if done < 500 else GROUP
            # Every other message is from a customer of the message before: new and known profiles.
            await asyncio.gather(*(pipeline.ingest(interaction(sms(phone(n // 2), ref=f"P-{n}")))
                                   for n in range(done, done + size)))
            done += size
        repeats = [interaction(sms(phone(n // 2), ref=f"P-{n}")) for n in range(100, 120)]
        returning = [interaction(sms(phone(n // 2), ref=f"P-{ROWS + n}")) for n in range(200, 240)]
        plans = await explain_next_group(engine, pipeline, [*repeats, *returning])
    finally:
        await pipeline.stop()

    wanted = {"interactions": 60, "identifiers": 20, "profiles": 20}  # refs; the returning phones; their profiles
    seen = set()
    for plan in plans:
        table = next((t for t in TABLES if f'FROM "{t}"' in plan["Query Text"] or f"FROM {t} " in plan["Query Text"]),
                     None)
        if table is None:
            continue
        seen.add(table)
        scans = list(nodes(plan["Plan"]))
        removed = sum(n.get("Rows Removed by Filter", 0) + n.get("Rows Removed by Index Recheck", 0) for n in scans)
        buffers = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
        shape = [(n["Node Type"], n.get("Index Cond") or n.get("Filter")) for n in scans]
        assert removed == 0, f"{table}: the lookup read {removed} rows it did not want: {shape}"
        assert buffers <= BUFFERS_PER_KEY * wanted[table], f"{table}: {buffers} buffers for {wanted[table]} keys: {shape}"
    assert seen == set(TABLES)
