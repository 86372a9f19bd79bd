"""The application factory: wiring only."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub import keys
from hub.access.auth import Authenticator, Scope, requires
from hub.api import agent_socket as agent_socket_api
from hub.api import asyncapi as asyncapi_api
from hub.api import auth as auth_api
from hub.api import campaigns as campaigns_api
from hub.api import console as console_api
from hub.api import interactions as interactions_api
from hub.api import messages as messages_api
from hub.api import meta as meta_api
from hub.api import openapi
from hub.api import outbox as outbox_api
from hub.api import profiles as profiles_api
from hub.api import routing as routing_api
from hub.api import rules as rules_api
from hub.api.errors import add_json_routes, add_not_routed
from hub.assignment.router_service import RouterService
from hub.automation.runtime import rules_ctx, scheduler_ctx
from hub.backoffice.commands import CommandConsumer
from hub.broker import outbox_store as repo
from hub.broker.relay import OutboxRelay
from hub.broker.topology import Topology
from hub.channels import router_link
from hub.channels.runtime import adapters_ctx, channel_adapters, mount_adapters, peers_ctx
from hub.http_errors import OUTAGES, OutageLog
from hub.ingest.rules_step import RulesStep
from hub.ingest.setup import ingest_pipeline
from hub.metrics import Metrics
from hub.outbound.campaigns import CampaignRunner
from hub.outbound.dispatcher import Dispatcher
from hub.outbound.messages import accept_command
from hub.outbound.scheduled_sends import ScheduledSender
from hub.outbound.templates import TemplateProblem, TemplateSet
from hub.settings import ConfigError, Settings
from hub.storage.engine import create_engine, writer
from hub.storage.migrate import upgrade
from hub.tasks import LoopPolicy, Loops
from schemas import BUILTIN_CHANNELS, CHANNELS_KEY, DEFAULT_REGION_KEY

log = logging.getLogger("omnihub")


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics()
    app[OUTAGES] = OutageLog()  # a database outage: 503 on every route, logged once (hub.http_errors)
    app[keys.TEMPLATES] = _templates(settings)
    app[keys.VALIDATION_CONTEXT] = {
        DEFAULT_REGION_KEY: settings.default_region,
        CHANNELS_KEY: BUILTIN_CHANNELS,
    }
    app[keys.AUTH] = Authenticator(settings.auth, lambda: app[keys.ENGINE])
    app.on_shutdown.append(_stop_socket_watch)
    # Every background loop registers here, for /readyz (hub.tasks).
    app[keys.LOOPS] = Loops(LoopPolicy(backoff_max_s=settings.loop_backoff_max_s,
                                       stuck_after_s=settings.loop_stuck_after_s))
    if not settings.auth.enabled:
        log.warning("auth is disabled: every API is open to anyone who can reach the hub "
                    "(set auth.enabled: true, see README \"Authentication\")")
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(peers_ctx)  # other hubs on this database: sockets held there
    app.cleanup_ctx.append(rules_ctx)  # rules (issue 5): before the pipeline that runs them
    app.cleanup_ctx.append(_relay)
    app.cleanup_ctx.append(_pipeline)
    app.cleanup_ctx.append(scheduler_ctx)  # rules (issue 5): timers and schedules
    app.cleanup_ctx.append(_router)  # routing (issue 6)
    app.cleanup_ctx.append(adapters_ctx)  # adapters (issue 4): inbound only once everything runs
    app.cleanup_ctx.append(_dispatcher)  # outbound (issue 4): stops before the adapters it sends through
    mount_adapters(app)
    app.cleanup_ctx.append(_commands)  # back-office (issue 7): after the pipeline it feeds
    add_json_routes(app, meta_api.routes)
    add_json_routes(app, auth_api.routes)
    add_json_routes(app, interactions_api.routes)
    add_json_routes(app, routing_api.routes)  # routing (issue 6)
    add_json_routes(app, agent_socket_api.routes)
    add_json_routes(app, rules_api.routes)  # rules (issue 5)
    add_json_routes(app, profiles_api.routes)  # profiles (issue 3)
    add_json_routes(app, messages_api.routes)  # outbound (issue 4)
    add_json_routes(app, campaigns_api.routes)
    add_json_routes(app, asyncapi_api.routes)  # back-office (issue 7)
    add_json_routes(app, outbox_api.routes)
    add_json_routes(app, openapi.routes)
    app.router.add_get("/metrics", app[keys.AUTH].wrap(_metrics))
    add_json_routes(app, console_api.routes)  # the agent console's static files
    add_not_routed(app)  # last: it answers whatever no route above took
    return app


async def _stop_socket_watch(app: web.Application) -> None:
    await app[keys.AUTH].sockets.stop()


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    # Migrations may run longer than any request may: on an engine without the statement timeout.
    migrator = create_engine(settings.database_url, connect_timeout_s=settings.database_connect_timeout_s)
    try:
        await upgrade(migrator)
    finally:
        await migrator.dispose()
    engine = create_engine(settings.database_url, connect_timeout_s=settings.database_connect_timeout_s,
                           statement_timeout_s=settings.database_statement_timeout_s,
                           on_reachable=app[OUTAGES].reachable)
    app[keys.ENGINE] = engine
    yield
    await engine.dispose()


async def _relay(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    relay = OutboxRelay(
        app[keys.ENGINE],
        amqp_url=settings.amqp_url.get_secret_value() if settings.amqp_url else None,
        exchange=settings.events_exchange,
        batch_size=settings.relay_batch_size,
        poll_interval_s=settings.relay_poll_interval_s,
        heartbeat_s=settings.amqp_heartbeat_s,
        metrics=app[keys.METRICS],
    )
    app[keys.RELAY] = relay
    if settings.amqp_url:
        app[keys.LOOPS].add(relay.supervised, backoff_max_s=settings.relay_backoff_max_s)
    await relay.start()
    yield
    await relay.stop()


async def _pipeline(app: web.Application) -> AsyncIterator[None]:
    rules_step = RulesStep(app[keys.RULES])
    app[keys.RULES_STEP] = rules_step
    pipeline = ingest_pipeline(app[keys.SETTINGS], app[keys.ENGINE], rules_step,
                               on_commit=[app[keys.RELAY].notify, app[OUTAGES].reachable])
    app[keys.PIPELINE] = pipeline
    await pipeline.start()
    yield
    await pipeline.stop()


# --- routing (issue 6) ---
async def _router(app: web.Application) -> AsyncIterator[None]:
    service = RouterService(app[keys.ENGINE], app[keys.SETTINGS].routing)
    app[keys.ROUTER] = service
    service.rules = app[keys.RULES]  # task.sla_breached / task.abandoned rules (issue 5)
    service.segment_set = app[keys.PIPELINE].policy.segments
    app[keys.PIPELINE].on_commit.append(service.notify)  # new tasks are routed at once, not at the next poll
    router_link.link(service, app[keys.PEERS])  # agents' consoles on other hubs (several hubs on PostgreSQL)
    if service.enabled:
        app[keys.LOOPS].add(service.supervised)
    await service.start()
    yield
    await service.stop()


async def _dispatcher(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    dispatcher = Dispatcher(app[keys.ENGINE], app[keys.ADAPTERS], app[keys.PIPELINE],
                            notify=app[keys.RELAY].notify, metrics=app[keys.METRICS],
                            max_attempts=settings.outbound_max_attempts,
                            concurrency=settings.outbound_concurrency)
    app[keys.DISPATCHER] = dispatcher
    app[keys.OUTBOUND] = functools.partial(_send_command, app)  # back-office message.send (issue 7)
    sends = ScheduledSender(app[keys.ENGINE], lambda: channel_adapters(app), app[keys.TEMPLATES],
                            quiet_hours=settings.quiet_hours, notify=dispatcher.notify)
    app[keys.SCHEDULED_SENDS] = sends
    runner = CampaignRunner(app[keys.ENGINE], lambda: channel_adapters(app), app[keys.TEMPLATES],
                            quiet_hours=settings.quiet_hours, notify=dispatcher.notify)
    app[keys.CAMPAIGNS] = runner
    app[keys.PIPELINE].on_commit.append(functools.partial(_wake_for_sends, app[keys.RULES_STEP], sends))
    for loop in (dispatcher.supervised, sends.supervised, runner.supervised):
        app[keys.LOOPS].add(loop)
    await dispatcher.start()
    await sends.start()
    await runner.start()
    yield
    await runner.stop()
    await sends.stop()
    await dispatcher.stop()


def _wake_for_sends(rules: RulesStep, sends: ScheduledSender) -> None:
    """After a commit in which a rule scheduled a message: an auto-reply goes out now, not at the
    sender's next poll."""
    if rules.sends_planned:
        rules.sends_planned = False
        sends.notify()


def _templates(settings: Settings) -> TemplateSet:
    try:
        return TemplateSet.load(settings.templates, settings.templates_dir)
    except TemplateProblem as exc:
        raise ConfigError(f"{exc.field}: {exc.message}") from None


async def _send_command(app: web.Application, command: Any, message_id: str) -> dict[str, Any] | None:
    channels = channel_adapters(app)
    async with writer(app[keys.ENGINE]).begin() as conn:  # type: ignore[union-attr]
        result = await conn.run_sync(accept_command, command, message_id, adapters=channels,
                                     now=datetime.now(UTC), templates=app[keys.TEMPLATES],
                                     quiet_hours=app[keys.SETTINGS].quiet_hours)
    app[keys.DISPATCHER].notify()
    return result


# --- back-office (issue 7) ---
async def _commands(app: web.Application) -> AsyncIterator[None]:
    """Consume omnihub.commands (declaring the topology first) when a broker is configured."""
    settings = app[keys.SETTINGS]
    if settings.amqp_url is None or not settings.backoffice.commands_enabled:
        yield
        return
    consumer = CommandConsumer(
        app[keys.ENGINE], url=settings.amqp_url.get_secret_value(), topology=Topology.from_settings(settings),
        settings=settings.backoffice, pipeline=app[keys.PIPELINE], segments=app[keys.PIPELINE].policy.segments,
        validation_context=app[keys.VALIDATION_CONTEXT], on_commit=[app[keys.RELAY].notify],
        outbound=lambda: app.get(keys.OUTBOUND), heartbeat_s=settings.amqp_heartbeat_s,
    )
    app[keys.COMMANDS] = consumer
    app[keys.LOOPS].add(consumer.supervised, backoff_max_s=settings.relay_backoff_max_s)
    await consumer.start()
    yield
    await consumer.stop()


@requires(Scope.METRICS)
async def _metrics(request: web.Request) -> web.Response:
    metrics = request.app[keys.METRICS]
    async with request.app[keys.ENGINE].connect() as conn:
        pending, oldest = await repo.outbox_backlog(conn)
    metrics.outbox_pending.set(pending)
    if oldest is not None:
        metrics.outbox_lag_seconds.set((datetime.now(UTC) - oldest).total_seconds())
    else:
        metrics.outbox_lag_seconds.set(0)
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
