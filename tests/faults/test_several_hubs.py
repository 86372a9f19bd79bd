"""Several `omnihub serve` processes on one database (issue 15): they start together on an empty
database, and with a real broker each event reaches the exchange once, in order per profile."""

from __future__ import annotations

import asyncio
import collections
import itertools

import aiohttp
import pytest
from sqlalchemy import text

from hub.storage.engine import create_engine
from tests.faults.harness import HubProcess, HubProcesses
from tests.hub.amqp_consumer import BoundQueue
from tests.hub.payloads import sms

HUBS = 3
STILL_ALIVE_AFTER_S = 3.0


async def start_together(hub_processes: HubProcesses, settings: dict, count: int = HUBS) -> list[HubProcess]:
    config = hub_processes.config(settings)
    hubs = [hub_processes.start(config) for _ in range(count)]
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(hub.wait_healthy(http) for hub in hubs))
    return hubs


async def assert_all_up_and_staying_up(hubs: list[HubProcess]) -> None:
    await asyncio.sleep(STILL_ALIVE_AFTER_S)  # a hub that lost a start-up race exits soon after
    async with aiohttp.ClientSession() as http:
        for hub in hubs:
            assert hub.alive(), f"a hub exited; log: {hub.log_path}"
            async with http.get(f"{hub.base}/healthz") as resp:
                assert resp.status == 200, hub.log_text()[-2000:]


async def test_three_hubs_start_together_on_an_empty_postgresql_database(hub_processes, fresh_pg_url):
    hubs = await start_together(hub_processes, {"database_url": fresh_pg_url})
    await assert_all_up_and_staying_up(hubs)
    # The schema was built once: one row in alembic_version, and a hub can store an interaction.
    engine = create_engine(fresh_pg_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar_one() == 1
    finally:
        await engine.dispose()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{hubs[2].base}/v1/interactions", json=sms("010-1500-0001")) as resp:
            assert resp.status == 201


async def test_three_hubs_start_together_on_one_empty_sqlite_file(hub_processes, tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/omnihub.db"
    hubs = await start_together(hub_processes, {"database_url": url, "blob_dir": str(tmp_path / "blobs")})
    await assert_all_up_and_staying_up(hubs)
    async with aiohttp.ClientSession() as http:
        for n, hub in enumerate(hubs):
            async with http.post(f"{hub.base}/v1/interactions", json=sms(f"010-1500-{n:04d}")) as resp:
                assert resp.status == 201, await resp.text()
