from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.hub.backoffice.connectors import harness


@pytest.fixture
def names(run_prefix, amqp_url):
    """Broker names of one test, under the run prefix; deleted afterwards."""
    prefix = f"{run_prefix}.conn.{uuid.uuid4().hex[:6]}"
    made: list[dict] = []

    def config(name: str, target: dict, **more) -> dict:
        cfg = harness.worker_config(prefix, name, amqp_url, target, **more)
        harness.declare(cfg)
        made.append(cfg)
        return cfg

    yield config
    for cfg in made:
        harness.delete(cfg)


class Db:
    """A database of the test's own, read from the test thread (a private event loop)."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine = create_async_engine(url, pool_size=1, max_overflow=0)

    def run(self, sql: str, **params):
        async def go():
            async with self.engine.begin() as conn:
                result = await conn.execute(text(sql), params)
                return result.all() if result.returns_rows else None

        return self.loop.run_until_complete(go())

    def scalar(self, sql: str, **params):
        return self.run(sql, **params)[0][0]

    def close(self) -> None:
        self.loop.run_until_complete(self.engine.dispose())
        self.loop.close()


@pytest.fixture
def pg(pg_database_url):
    db = Db(pg_database_url)
    yield db
    db.close()
