"""`omnihub migrate`: apply the database migrations (serve also does at start)."""

from __future__ import annotations

import argparse
import asyncio

from hub.settings import load_settings
from hub.storage.engine import create_engine
from hub.storage.migrate import current_revisions, upgrade


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)

    async def run() -> tuple[str, ...]:
        engine = create_engine(settings.database_url)
        try:
            await upgrade(engine)
            return await current_revisions(engine)
        finally:
            await engine.dispose()

    print(f"database at revision {', '.join(asyncio.run(run()))}")
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    migrate = sub.add_parser("migrate", help="apply database migrations (serve also does at start)")
    migrate.add_argument("--config", default=argparse.SUPPRESS, help="YAML config file")
    migrate.set_defaults(func=cmd_migrate)
