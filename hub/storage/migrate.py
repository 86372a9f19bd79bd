"""Alembic migrations, run at start and by `omnihub migrate`.

Several hubs may start at once on one empty database (issue 15), so a migration run holds the
database's migration lock for its whole transaction: on PostgreSQL a transaction-scoped advisory
lock, taken on the connection Alembic then uses; on SQLite the write lock (BEGIN IMMEDIATE, which in
WAL mode is what BEGIN EXCLUSIVE is). The hub that gets the lock first builds the schema and commits;
each one that waited then reads alembic_version, finds the schema current and goes on.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_random

from hub.storage.engine import is_sqlite, writer

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# pg_advisory_xact_lock's key: "omnimigr" would not fit a bigint's sign, so the ASCII of "omnimig".
MIGRATION_LOCK_KEY = 0x6F6D6E696D6967
# SQLite waits busy_timeout (10 s) for the write lock; a first start on a loaded machine may build
# the schema for longer than that, so a hub that timed out waiting tries again, up to this long.
SQLITE_LOCK_WAIT_S = 300.0


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "heads") -> None:
    if not is_sqlite(engine):
        await _upgrade_holding_lock(engine, revision)
        return
    retrying = AsyncRetrying(
        retry=retry_if_exception(_sqlite_locked),
        stop=stop_after_delay(SQLITE_LOCK_WAIT_S),
        wait=wait_random(0.05, 0.5),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            await _upgrade_holding_lock(engine, revision)


async def _upgrade_holding_lock(engine: AsyncEngine, revision: str) -> None:
    def run(sync_conn) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    # writer(): on SQLite the transaction opens with BEGIN IMMEDIATE, so it holds the write lock
    # before Alembic reads alembic_version.
    async with writer(engine).begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        await conn.run_sync(run)


def _sqlite_locked(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


async def current_revisions(engine: AsyncEngine) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads())
