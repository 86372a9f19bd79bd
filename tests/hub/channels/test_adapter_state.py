"""The adapters' durable key-value store (hub.channels.state): `update` reads and writes one key as
one step, so two hub processes changing one value (a chat visitor's pending replies: one hub adds
a reply, another drops the one the widget confirmed) lose neither change. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

from hub.channels.state import DbStateStore
from hub.storage.engine import create_engine

ROUNDS = 40


async def test_two_hubs_updating_one_key_lose_no_change(engine, database_url):
    other = create_engine(database_url)  # a second process's engine: its own connections
    try:
        hubs = [DbStateStore(lambda: engine, "chat"), DbStateStore(lambda: other, "chat")]

        def adding(item: str):
            def add(raw: str | None) -> str:
                return json.dumps([*(json.loads(raw) if raw else []), item])
            return add

        async def writer(n: int) -> None:
            for i in range(ROUNDS):
                await hubs[n].update("pending:v1", adding(f"{n}-{i}"))

        await asyncio.gather(writer(0), writer(1))
        stored = json.loads(await hubs[0].get("pending:v1"))
        assert sorted(stored) == sorted(f"{n}-{i}" for n in (0, 1) for i in range(ROUNDS))
    finally:
        await other.dispose()


async def test_a_change_that_keeps_the_value_writes_nothing_and_one_that_raises_aborts(engine):
    store = DbStateStore(lambda: engine, "chat")
    assert await store.update("k", lambda raw: None) is None
    assert await store.get("k") is None
    assert await store.update("k", lambda raw: "one") == "one"

    def refuse(raw):
        raise ValueError("full")

    try:
        await store.update("k", refuse)
    except ValueError:
        pass
    assert await store.get("k") == "one"
