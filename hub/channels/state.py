"""The durable key-value store each adapter gets (adapters.base.StateStore), one namespace per adapter."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.storage.engine import writer
from hub.storage.outbound_models import adapter_state

# Advisory lock space of `update` on PostgreSQL: the two-int form, so it never meets the hub's
# one-bigint locks (router, migrations).
_UPDATE_LOCK_CLASS = 0x6F6D6E73


class DbStateStore:
    def __init__(self, engine: Callable[[], AsyncEngine], adapter: str) -> None:
        self._engine = engine  # looked up per call: the engine is opened after adapters are built
        self._adapter = adapter

    async def get(self, key: str) -> str | None:
        t = adapter_state.c
        async with self._engine().connect() as conn:
            return (await conn.execute(
                select(t.value).where(t.adapter == self._adapter, t.key == key))).scalar_one_or_none()

    async def set(self, key: str, value: str) -> None:
        async with self._engine().begin() as conn:
            await self._write(conn, key, value)

    async def update(self, key: str, change: Callable[[str | None], str | None]) -> str | None:
        """Several hubs share these values (a chat visitor's pending replies, written by the hub
        that sends and the hub that holds the socket): the read and the write are one transaction,
        serialized per key (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory transaction lock, which
        also covers a key with no row yet)."""
        t = adapter_state.c
        async with writer(self._engine()).begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:cls, hashtext(:name))"),
                                   {"cls": _UPDATE_LOCK_CLASS, "name": f"{self._adapter}/{key}"})
            value = (await conn.execute(
                select(t.value).where(t.adapter == self._adapter, t.key == key))).scalar_one_or_none()
            changed = change(value)
            if changed is None or changed == value:
                return value
            await self._write(conn, key, changed)
            return changed

    async def _write(self, conn: AsyncConnection, key: str, value: str) -> None:
        t = adapter_state.c
        now = datetime.now(UTC)
        done = await conn.execute(update(adapter_state).where(t.adapter == self._adapter, t.key == key)
                                  .values(value=value, updated_at=now))
        if done.rowcount == 0:
            await conn.execute(adapter_state.insert().values(adapter=self._adapter, key=key, value=value, updated_at=now))
