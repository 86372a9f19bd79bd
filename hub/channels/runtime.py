"""Running the configured channel adapters inside the hub.

`mount_adapters` (called by create_app, before the router freezes) builds the adapters named in
config, adds their channels to what the contact schema accepts, and mounts their webhooks under
`/channels/<name>/` (or at the absolute path a webhook names, e.g. the CTI's `/v1/cti/events`), each
behind the adapter's authenticity check, and their `routes()` at the absolute paths they declare
(web chat's `/v1/chat/ws`), whose handlers check their callers themselves. `adapters_ctx` starts
their listeners once the pipeline runs, and stops them before it stops; at shutdown each adapter's
`closing()` runs first, so open websockets do not hold the server's graceful shutdown up.

What an adapter calls on the hub (ingest, report_status, blobs.put) raises `HubUnavailable` when
the hub itself cannot take anything (the pipeline stopped, the database or the disk unreachable),
so an adapter can tell "try again later" from "this message is refused": the IMAP poller counts
only the second towards dead-lettering a message.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import aiohttp
from aiohttp import web

from adapters.base import (
    AdapterDeps,
    AdapterError,
    AuthenticityError,
    CallUpdate,
    ChannelAdapter,
    HubUnavailable,
    PayloadError,
    Route,
    StatusUpdate,
    Webhook,
)
from adapters.registry import build
from hub import keys
from hub.access.auth import PUBLIC, requires
from hub.assignment.router_service import RouterUnavailable
from hub.channels.blobs import FileBlobStore
from hub.channels.peers import PgPeers, peers_for
from hub.channels.state import DbStateStore
from hub.http_errors import error_response, outage_name, unavailable_cause
from hub.ingest.call_updates import apply_call_update_async
from hub.outbound.messages import record_status_async
from routing import RoutingError, TaskState
from schemas import CHANNELS_KEY, Interaction, call_status_rank

log = logging.getLogger("omnihub.adapters")

P = ParamSpec("P")
R = TypeVar("R")


class MissingDedupeKey(AdapterError):
    """An adapter handed the hub an interaction without provider_ref: a provider retry would duplicate it."""


def mount_adapters(app: web.Application) -> None:
    settings = app[keys.SETTINGS]
    blobs = FileBlobStore(settings.blob_dir)
    app[keys.BLOBS] = blobs
    adapter_blobs = _GuardedBlobs(blobs)

    def deps_for(cls: type[ChannelAdapter]) -> AdapterDeps:
        return AdapterDeps(
            ingest=_ingest_for(app, cls),
            report_status=_status_for(app, cls),
            blobs=adapter_blobs,
            state=DbStateStore(lambda: app[keys.ENGINE], cls.name),
            clock=lambda: datetime.now(UTC),
            public_base_url=settings.public_base_url.rstrip("/"),
            validation_context=app[keys.VALIDATION_CONTEXT],
            log=logging.getLogger(f"omnihub.adapters.{cls.name}"),
            update_call=_call_update_for(app, cls),
            tell_peers=functools.partial(_tell_peers, app, cls.name),
        )

    def public(handler):
        return app[keys.AUTH].wrap(requires(PUBLIC)(handler))

    running = build(settings.adapters, deps_for)
    app[keys.ADAPTERS] = {adapter.name: adapter for adapter in running}
    channels = set(app[keys.VALIDATION_CONTEXT][CHANNELS_KEY])
    channels.update(adapter.channel for adapter in running)
    app[keys.VALIDATION_CONTEXT][CHANNELS_KEY] = frozenset(channels)
    for adapter in running:
        for hook in adapter.webhooks():
            path = ("/" + hook.path.lstrip("/") if hook.absolute
                    else f"/channels/{adapter.name}/{hook.path.lstrip('/')}")
            # Public to hub credentials: a provider's webhook carries the provider's signature instead.
            app.router.add_route(hook.method, path, public(_guarded(adapter, hook)))
        for route in adapter.routes():
            if not route.path.startswith("/"):
                raise AdapterError(f"adapter {adapter.name}: route path {route.path!r} is not absolute")
            # The customer-facing side of a channel (the chat widget and its socket): customers have
            # no hub login; the adapter decides what a request may do.
            app.router.add_route(route.method, route.path, public(_answering(adapter, route)))
    if running:
        app.on_shutdown.append(_closing)


async def _closing(app: web.Application) -> None:
    for adapter in app[keys.ADAPTERS].values():
        try:
            await adapter.closing()
        except Exception:
            log.exception("adapter failed to close its connections", extra={"adapter": adapter.name})


def channel_adapters(app: web.Application) -> dict[str, str]:
    """Which adapter sends on each channel: the first configured for it."""
    found: dict[str, str] = {}
    for adapter in app[keys.ADAPTERS].values():
        found.setdefault(adapter.channel, adapter.name)
    return found


async def peers_ctx(app: web.Application) -> AsyncIterator[None]:
    """The hub's link to the other hubs on its database (hub.channels.peers), each adapter subscribed
    to what its twins elsewhere tell it; opened before the router and the adapters that use it."""
    peers = peers_for(app[keys.ENGINE])
    app[keys.PEERS] = peers
    for adapter in app[keys.ADAPTERS].values():
        peers.subscribe(f"adapter.{adapter.name}", _from_peer(adapter))
    if isinstance(peers, PgPeers):
        await peers.start()
    yield
    if isinstance(peers, PgPeers):
        await peers.stop()


def _from_peer(adapter: ChannelAdapter) -> Callable[[dict[str, Any]], Awaitable[None]]:
    async def handle(body: dict[str, Any]) -> None:
        await adapter.from_peer(body)

    return handle


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


async def _tell_peers(app: web.Application, adapter: str, payload: Mapping[str, Any]) -> None:
    await app[keys.PEERS].publish(f"adapter.{adapter}", dict(payload))


def _guarded(adapter: ChannelAdapter, hook: Webhook):
    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            await adapter.authenticate(request, body)
        except AuthenticityError as exc:
            request.app[keys.METRICS].webhooks_refused.labels(adapter.name).inc()
            # checked_url: a signature over the URL fails for every webhook when public_base_url is
            # not the URL the provider calls (`serve --port` with the default one).
            checked = {"checked_url": exc.checked_url} if exc.checked_url else {}
            log.warning("webhook refused", extra={"adapter": adapter.name, "path": request.path,
                                                   "reason": str(exc), **checked})
            return error_response(403, "forbidden", f"authenticity check failed: {exc}")
        try:
            return await hook.handler(request, body)
        except PayloadError as exc:
            log.info("payload refused", extra={"adapter": adapter.name, "field": exc.field})
            return error_response(422, "invalid_payload", str(exc),
                                  [{"field": exc.field, "message": exc.message}])
        # HubUnavailable goes on to hub.http_errors.answer_for, as every route's outage does: 503
        # with Retry-After (nothing was committed; the provider should send it again, which a 500
        # does not say), logged once per outage.

    handler.__name__ = f"{adapter.name}_{hook.path.strip('/').replace('/', '_') or 'root'}"
    handler.__doc__ = (f"{adapter.name} webhook ({adapter.channel}): signed by the provider; 403 and nothing "
                       "written when the signature fails")
    return handler


def _answering(adapter: ChannelAdapter, route: Route):
    """An adapter's own route, its PayloadError answered as its webhooks' are (and HubUnavailable too,
    by answer_for)."""
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await route.handler(request)
        except PayloadError as exc:
            return error_response(422, "invalid_payload", str(exc), [{"field": exc.field, "message": exc.message}])

    handler.__name__ = f"{adapter.name}_{route.path.strip('/').replace('/', '_').replace('.', '_')}"
    handler.__doc__ = route.handler.__doc__ or f"{adapter.name} ({adapter.channel})"
    return handler


@contextlib.contextmanager
def outage_as_hub_unavailable() -> Iterator[None]:
    """Re-raise, as HubUnavailable (chained), the errors that say the hub cannot work right now
    rather than that the payload is bad (hub.http_errors.unavailable_cause: the same test every
    HTTP route's 503 uses)."""
    try:
        yield
    except HubUnavailable:
        raise
    except Exception as exc:
        if unavailable_cause(exc) is None:
            raise
        raise HubUnavailable(f"the hub is unavailable ({outage_name(exc)})") from exc


def guard_outages(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """`fn` with outage_as_hub_unavailable around each call."""
    @functools.wraps(fn)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        with outage_as_hub_unavailable():
            return await fn(*args, **kwargs)

    return guarded


class _GuardedBlobs:
    """The blob store as adapters see it: a full or unmounted disk is the hub's outage."""

    def __init__(self, blobs: FileBlobStore) -> None:
        self._blobs = blobs

    async def put(self, data: bytes) -> str:
        with outage_as_hub_unavailable():
            return await self._blobs.put(data)


def _ingest_for(app: web.Application, cls: type[ChannelAdapter]):
    @guard_outages
    async def ingest(interaction: Interaction):
        if not interaction.provider_ref:
            raise MissingDedupeKey(f"adapter {cls.name} gave an interaction with no provider_ref")
        result = await app[keys.PIPELINE].ingest(interaction)
        app[keys.METRICS].count_ingested(interaction.channel, result.created)
        return result

    return ingest


def _status_for(app: web.Application, cls: type[ChannelAdapter]):
    @guard_outages
    async def report_status(update: StatusUpdate) -> bool:
        return await record_status_async(app[keys.ENGINE], cls.name, update, app[keys.RELAY].notify,
                                         now=datetime.now(UTC))

    return report_status


def _call_update_for(app: web.Application, cls: type[ChannelAdapter]):
    @guard_outages
    async def update_call(update_: CallUpdate):
        result = await apply_call_update_async(app[keys.ENGINE], cls.channel, cls.provider, update_,
                                               context=app[keys.VALIDATION_CONTEXT],
                                               notify=app[keys.RELAY].notify, now=datetime.now(UTC))
        if result is not None and result.changed and call_status_rank(result.status) == _CALL_ENDED:
            await _abandon_unanswered(app, result.interaction_id)
        return result

    return update_call


_CALL_ENDED = 3  # schemas.call_status_rank of any final status


async def _abandon_unanswered(app: web.Application, interaction_id: uuid.UUID) -> None:
    """A call that ended while its task still waited for an agent (the caller hung up in the queue,
    or the call was answered elsewhere): nobody can take it any more, so the task is abandoned
    (`task.abandoned`) rather than offered to an agent who would find no caller. A task an agent
    accepted stays with them for wrap-up."""
    service = app[keys.ROUTER]
    router = service.router
    if router is None:
        return
    wanted = str(interaction_id)
    for task in router.tasks():
        if task.interaction_id == wanted and task.state in (TaskState.WAITING, TaskState.OFFERED):
            try:
                await service.run(lambda r, task_id=task.id: r.abandon(task_id))
            except (RoutingError, RouterUnavailable) as exc:  # accepted meanwhile, or no longer routing here
                log.info("call ended; its task was not abandoned", extra={"task_id": task.id, "reason": str(exc)})
            return
