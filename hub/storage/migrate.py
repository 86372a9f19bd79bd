"""Alembic migrations, run at start and by `omnihub migrate`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Hubs starting together on one PostgreSQL database migrate one at a time (the others then find
# it current); a transaction lock, released at commit or when a killed hub's session ends.
MIGRATION_LOCK_KEY = 0x6F6D6E6D


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "heads") -> None:
    def run(sync_conn) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        await conn.run_sync(run)


async def current_revisions(engine: AsyncEngine) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads())
