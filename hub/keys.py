"""Typed application keys (one place, so every module names a resource the same way)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from adapters.base import ChannelAdapter
    from hub.access.auth import Authenticator
    from hub.assignment.router_service import RouterService
    from hub.automation.live import LiveRules
    from hub.automation.scheduler import Scheduler
    from hub.backoffice.commands import CommandConsumer, OutboundSender
    from hub.broker.relay import OutboxRelay
    from hub.channels.blobs import FileBlobStore
    from hub.channels.peers import Peers
    from hub.ingest.pipeline import Pipeline
    from hub.ingest.rules_step import RulesStep
    from hub.metrics import Metrics
    from hub.outbound.campaigns import CampaignRunner
    from hub.outbound.dispatcher import Dispatcher
    from hub.outbound.scheduled_sends import ScheduledSender
    from hub.outbound.templates import TemplateSet
    from hub.settings import Settings
    from hub.tasks import Loops

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
ENGINE: web.AppKey[AsyncEngine] = web.AppKey("engine", AsyncEngine)
PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline")
RELAY: web.AppKey[OutboxRelay] = web.AppKey("relay")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
VALIDATION_CONTEXT: web.AppKey[dict] = web.AppKey("validation_context", dict)
ROUTER: web.AppKey[RouterService] = web.AppKey("router")  # routing (issue 6)
# --- rules (issue 5) ---
RULES: web.AppKey[LiveRules] = web.AppKey("rules")  # the running ruleset, which reloads swap
RULES_STEP: web.AppKey[RulesStep] = web.AppKey("rules_step")  # the ingest step that runs it
SCHEDULER: web.AppKey[Scheduler] = web.AppKey("scheduler")
# Set before start-up to drive timers and schedules in virtual time (tests); default: the wall clock.
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
RELOAD_ON_SIGHUP: web.AppKey[bool] = web.AppKey("reload_on_sighup", bool)  # set by `omnihub serve`
# --- adapters (issue 4) ---
ADAPTERS: web.AppKey[dict[str, ChannelAdapter]] = web.AppKey("adapters")  # by adapter name
BLOBS: web.AppKey[FileBlobStore] = web.AppKey("blobs")
# The other hub processes on the same database (hub.channels.peers): sockets held elsewhere.
PEERS: web.AppKey[Peers] = web.AppKey("peers")
DISPATCHER: web.AppKey[Dispatcher] = web.AppKey("dispatcher")
TEMPLATES: web.AppKey[TemplateSet] = web.AppKey("templates")  # message templates, compiled at start-up
SCHEDULED_SENDS: web.AppKey[ScheduledSender] = web.AppKey("scheduled_sends")  # rules' and commands' messages
CAMPAIGNS: web.AppKey[CampaignRunner] = web.AppKey("campaigns")
# --- back-office (issue 7) ---
COMMANDS: web.AppKey[CommandConsumer] = web.AppKey("commands")  # set only when amqp_url is configured
# The outbound module registers its sender here for `message.send` commands; unset, they are stored.
OUTBOUND: web.AppKey[OutboundSender] = web.AppKey("outbound")
LOOPS: web.AppKey[Loops] = web.AppKey("loops")  # every supervised background loop, for /readyz
# --- authentication ---
AUTH: web.AppKey[Authenticator] = web.AppKey("auth")  # always set; `.enabled` says whether it checks
