"""Identity resolution speed over a large identifier table, on SQLite and PostgreSQL.

    python bench/identity.py [--identifiers 1000000] [--batches 300] [--backend sqlite|postgresql|both] [--analyze]

Fills the identifiers table with N identifiers (N/2 customers, each a phone and an email), then runs
the ingest writer's resolution path as it runs in production: per group of 64 interactions one
indexed lookup of their identifiers (hub.storage.batch.find_identifiers) and the pure
planning (hub.profiles.identity.IdentityPlan), 70% of them known customers (one in ten arriving with a new
second identifier to attach) and 30% new. Prints resolutions/s and the query plan of the lookup,
which must search the primary key index, not scan. There is no floor: the figure is a capacity,
and the query plan is the check that it does not depend on N.

The lookups run on one connection that first resolved groups while the table was empty, as a hub
starting on a new database does, and on PostgreSQL the table is not analyzed (autovacuum is off for
it during the bench): the state before autovacuum's first pass, when prepared lookups used to keep
plans that read the whole type's entries. --analyze runs ANALYZE after the fill instead. The plan
printed on PostgreSQL is the one the measured connection ran (auto_explain), not a fresh EXPLAIN.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime

if __package__ in (None, ""):  # `python bench/x.py`: the project root, not bench/, heads sys.path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from hub.profiles.identity import IdentityPlan  # noqa: E402
from hub.storage import batch as store  # noqa: E402
from hub.storage.engine import create_engine  # noqa: E402
from hub.storage.migrate import upgrade  # noqa: E402
from hub.storage.models import identifiers, profiles  # noqa: E402

GROUP = 64
PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def phone(i: int) -> str:
    return f"+8210{20000000 + i:08d}"


def email(i: int) -> str:
    return f"customer{i}@example.com"


async def fill(engine: AsyncEngine, customers: int) -> None:
    now = datetime.now(UTC)
    chunk = 20_000
    for start in range(0, customers, chunk):
        ids = [uuid.uuid4() for _ in range(min(chunk, customers - start))]
        rows = [{"id": pid, "created_at": now, "updated_at": now, "display_name": None, "attributes": "{}"}
                for pid in ids]
        idents = [row for n, pid in enumerate(ids, start)
                  for row in ({"type": "phone", "value": phone(n), "profile_id": pid, "created_at": now},
                              {"type": "email", "value": email(n), "profile_id": pid, "created_at": now})]
        async with engine.begin() as conn:
            await conn.run_sync(lambda c, r=rows, i=idents: (store.insert_rows(c, profiles, r),
                                                              store.insert_rows(c, identifiers, i)))


def groups(customers: int, count: int, rng: random.Random) -> list[list[list[tuple[str, str]]]]:
    out = []
    fresh = customers
    for _ in range(count):
        group = []
        for _ in range(GROUP):
            roll = rng.random()
            if roll < 0.7:
                n = rng.randrange(customers)
                keys = [("phone", phone(n))]
                if roll < 0.07:  # a known customer giving a new email: attach
                    keys.append(("email", f"new{n}@example.org"))
            else:
                fresh += 1
                keys = [("phone", phone(fresh))]
            group.append(keys)
        out.append(group)
    return out


def resolve_groups(conn, work: list[list[list[tuple[str, str]]]]) -> int:
    now = datetime.now(UTC)
    done = 0
    for group in work:
        keys = list({k for item in group for k in item})
        plan = IdentityPlan(known=store.find_identifiers(conn, keys), now=now)
        for item in group:
            plan.resolve(item)
            done += 1
    return done


async def query_plan(engine: AsyncEngine) -> str:
    sample = ", ".join(f"'{phone(i)}'" for i in range(3))
    sql = f"SELECT value, profile_id FROM identifiers WHERE type = 'phone' AND value IN ({sample})"
    async with engine.connect() as conn:
        rows = (await conn.execute(text("EXPLAIN QUERY PLAN " + sql))).all()
    return "\n".join("    " + " ".join(str(c) for c in row) for row in rows)


async def explained_lookup(conn, group: list[list[tuple[str, str]]]) -> str:
    """The plan the lookup ran on this connection (its prepared statement), with its buffers."""
    notices: list[str] = []

    def listen(_conn, message) -> None:
        notices.append(message.message)

    driver = (await conn.get_raw_connection()).driver_connection
    driver.add_log_listener(listen)
    for setting in ("LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0", "SET auto_explain.log_analyze = on",
                    "SET auto_explain.log_buffers = on", "SET auto_explain.log_level = notice"):
        await conn.exec_driver_sql(setting)
    await conn.run_sync(lambda c: resolve_groups(c, [group]))
    await conn.exec_driver_sql("SET auto_explain.log_min_duration = -1")
    driver.remove_log_listener(listen)
    plans = [n.split("plan:", 1)[1] for n in notices if "plan:" in n and "identifiers" in n and "'phone'" in n]
    return "\n".join("    " + line for line in (plans[-1] if plans else "(none logged)").strip().splitlines())


async def run(url: str, args: argparse.Namespace) -> None:
    engine = create_engine(url)
    postgres = engine.dialect.name == "postgresql"
    try:
        await upgrade(engine)
        customers = args.identifiers // 2
        work = groups(customers, args.batches, random.Random(1))
        async with engine.connect() as lookups:
            if postgres and not args.analyze:
                await lookups.execute(text("ALTER TABLE identifiers SET (autovacuum_enabled = false)"))
                await lookups.commit()
            # Plans made while the table is empty, as on a hub's first minutes on a new database.
            await lookups.run_sync(lambda c: resolve_groups(c, work[:10]))
            await lookups.rollback()
            started = time.perf_counter()
            await fill(engine, customers)
            filled = time.perf_counter() - started
            if postgres and args.analyze:
                async with engine.begin() as conn:
                    await conn.execute(text("ANALYZE identifiers"))
            started = time.perf_counter()
            done = await lookups.run_sync(lambda c: resolve_groups(c, work))
            elapsed = time.perf_counter() - started
            await lookups.rollback()
            plan = await explained_lookup(lookups, work[0]) if postgres else await query_plan(engine)
            await lookups.rollback()
        state = ("ANALYZEd" if args.analyze else "never analyzed") if postgres else "SQLite"
        print(f"{engine.dialect.name:10s}: {args.identifiers:,} identifiers (filled in {filled:.0f}s, {state}); "
              f"{done:,} resolutions in groups of {GROUP}: {done / elapsed:,.0f} resolutions/s")
        print("  query plan of the lookup:")
        print(plan)
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identifiers", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--analyze", action="store_true", help="PostgreSQL: ANALYZE the filled table before measuring")
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            await run(f"sqlite+aiosqlite:///{tmp}/identity.db", args)
    if args.backend in ("postgresql", "both"):
        name = f"bench_identity_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN).execution_options(isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            await run(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", args)
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            await admin.dispose()


if __name__ == "__main__":
    asyncio.run(main())
