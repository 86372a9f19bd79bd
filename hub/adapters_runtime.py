"""Running the configured channel adapters inside the hub.

`mount_adapters` (called by create_app, before the router freezes) builds the adapters named in
config, adds their channels to what the contact schema accepts, and mounts their webhooks under
`/channels/<name>/`, each behind the adapter's authenticity check. `adapters_ctx` starts their
listeners once the pipeline runs, and stops them before it stops.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from adapters.base import (
    AdapterDeps,
    AdapterError,
    AuthenticityError,
    ChannelAdapter,
    PayloadError,
    StatusUpdate,
    Webhook,
)
from adapters.registry import build
from schemas import CHANNELS_KEY, Interaction

from . import keys
from .adapter_state import DbStateStore
from .api.errors import error_response
from .blobs import FileBlobStore
from .outbound import record_status_async

log = logging.getLogger("omnihub.adapters")


class MissingDedupeKey(AdapterError):
    """An adapter handed the hub an interaction without provider_ref: a provider retry would duplicate it."""


def mount_adapters(app: web.Application) -> None:
    settings = app[keys.SETTINGS]
    blobs = FileBlobStore(settings.blob_dir)
    app[keys.BLOBS] = blobs

    def deps_for(cls: type[ChannelAdapter]) -> AdapterDeps:
        return AdapterDeps(
            ingest=_ingest_for(app, cls),
            report_status=_status_for(app, cls),
            blobs=blobs,
            state=DbStateStore(lambda: app[keys.ENGINE], cls.name),
            clock=lambda: datetime.now(UTC),
            public_base_url=settings.public_base_url.rstrip("/"),
            validation_context=app[keys.VALIDATION_CONTEXT],
            log=logging.getLogger(f"omnihub.adapters.{cls.name}"),
        )

    running = build(settings.adapters, deps_for)
    app[keys.ADAPTERS] = {adapter.name: adapter for adapter in running}
    channels = set(app[keys.VALIDATION_CONTEXT][CHANNELS_KEY])
    channels.update(adapter.channel for adapter in running)
    app[keys.VALIDATION_CONTEXT][CHANNELS_KEY] = frozenset(channels)
    for adapter in running:
        for hook in adapter.webhooks():
            path = f"/channels/{adapter.name}/{hook.path.lstrip('/')}"
            app.router.add_route(hook.method, path, _guarded(adapter, hook))


def channel_adapters(app: web.Application) -> dict[str, str]:
    """Which adapter sends on each channel: the first configured for it."""
    found: dict[str, str] = {}
    for adapter in app[keys.ADAPTERS].values():
        found.setdefault(adapter.channel, adapter.name)
    return found


async def adapters_ctx(app: web.Application) -> AsyncIterator[None]:
    running = list(app[keys.ADAPTERS].values())
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        started: list[ChannelAdapter] = []
        try:
            for adapter in running:
                adapter.deps.http = http
                await adapter.start()
                started.append(adapter)
            yield
        finally:
            for adapter in reversed(started):
                try:
                    await adapter.stop()
                except Exception:
                    log.exception("adapter failed to stop", extra={"adapter": adapter.name})


def _guarded(adapter: ChannelAdapter, hook: Webhook):
    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            await adapter.authenticate(request, body)
        except AuthenticityError as exc:
            request.app[keys.METRICS].webhooks_refused.labels(adapter.name).inc()
            log.warning("webhook refused", extra={"adapter": adapter.name, "path": request.path,
                                                   "reason": str(exc)})
            return error_response(403, "forbidden", f"authenticity check failed: {exc}")
        try:
            return await hook.handler(request, body)
        except PayloadError as exc:
            log.info("payload refused", extra={"adapter": adapter.name, "field": exc.field})
            return error_response(422, "invalid_payload", str(exc),
                                  [{"field": exc.field, "message": exc.message}])

    handler.__name__ = f"{adapter.name}_{hook.path.strip('/').replace('/', '_') or 'root'}"
    handler.__doc__ = (f"{adapter.name} webhook ({adapter.channel}): signed by the provider; 403 and nothing "
                       "written when the signature fails")
    return handler


def _ingest_for(app: web.Application, cls: type[ChannelAdapter]):
    async def ingest(interaction: Interaction):
        if not interaction.provider_ref:
            raise MissingDedupeKey(f"adapter {cls.name} gave an interaction with no provider_ref")
        result = await app[keys.PIPELINE].ingest(interaction)
        app[keys.METRICS].count_ingested(interaction.channel, result.created)
        return result

    return ingest


def _status_for(app: web.Application, cls: type[ChannelAdapter]):
    async def report_status(update: StatusUpdate) -> bool:
        return await record_status_async(app[keys.ENGINE], cls.name, update, app[keys.RELAY].notify,
                                         now=datetime.now(UTC))

    return report_status
