"""Typed application keys (one place, so every module names a resource the same way)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from .metrics import Metrics
    from .outbox import OutboxRelay
    from .pipeline import Pipeline
    from .settings import Settings

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
ENGINE: web.AppKey[AsyncEngine] = web.AppKey("engine", AsyncEngine)
PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline")
RELAY: web.AppKey[OutboxRelay] = web.AppKey("relay")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
VALIDATION_CONTEXT: web.AppKey[dict] = web.AppKey("validation_context", dict)
