from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from hub.app import create_app
from hub.settings import load_settings
from hub.storage.engine import create_engine
from hub.storage.migrate import upgrade
from hub.storage.models import metadata

_MIGRATED: set[str] = set()


async def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    try:
        if url not in _MIGRATED:
            await upgrade(engine)
            _MIGRATED.add(url)
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request, tmp_path):
    """A clean database, once per backend: the same tests run on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/omnihub.db"
    url = request.getfixturevalue("pg_database_url")
    await _reset_postgres(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite+aiosqlite:///{tmp_path}/omnihub.db"


@pytest.fixture
def make_settings(database_url):
    def make(**overrides):
        overrides.setdefault("database_url", database_url)
        overrides.setdefault("relay_poll_interval_s", 0.2)
        overrides.setdefault("relay_backoff_max_s", 0.5)
        # back-office (issue 7): a hub given amqp_url consumes omnihub.commands, a name without the
        # run prefix; tests that want the consumer pass their own prefixed `backoffice` names.
        overrides.setdefault("backoffice", {"commands_enabled": False})
        return load_settings(None, **overrides)

    return make


@pytest.fixture
async def client(aiohttp_client, make_settings):
    return await aiohttp_client(create_app(make_settings()))


@pytest.fixture
async def engine(database_url):
    eng = create_engine(database_url)
    await upgrade(eng)
    yield eng
    await eng.dispose()


async def count_rows(app_or_engine, table: str) -> int:
    from hub import keys

    engine = app_or_engine[keys.ENGINE] if hasattr(app_or_engine, "router") else app_or_engine
    async with engine.connect() as conn:
        return (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()


async def eventually(predicate, timeout: float = 15.0, interval: float = 0.05):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
