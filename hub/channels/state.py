"""The durable key-value store each adapter gets (adapters.base.StateStore), one namespace per adapter."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.storage.outbound_models import adapter_state


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
        t = adapter_state.c
        now = datetime.now(UTC)
        async with self._engine().begin() as conn:
            done = await conn.execute(update(adapter_state).where(t.adapter == self._adapter, t.key == key)
                                      .values(value=value, updated_at=now))
            if done.rowcount == 0:
                await conn.execute(adapter_state.insert().values(
                    adapter=self._adapter, key=key, value=value, updated_at=now))
