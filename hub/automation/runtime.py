"""The hub's running rules: load at start-up, reload (API and SIGHUP), the scheduler's lifetime.

A reload validates the whole directory first and swaps the compiled ruleset in one assignment, so
a bad file is refused with its line-numbered issues and the running rules stay. Every ruleset that
goes live is recorded by version (with its sources) so `rules replay` can re-derive its decisions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import AsyncIterator, Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub import keys
from hub.automation.live import LiveRules
from hub.automation.scheduler import Scheduler
from hub.outbound.templates import TemplateSet
from hub.storage.engine import writer
from hub.storage.rules_models import rulesets
from rules import Issue, RulesError, Ruleset
from rules.actions import AutoReply, SendMessage, StartTimer
from rules.loader import load_sources
from schemas import CHANNELS_KEY, OmnihubError

log = logging.getLogger("omnihub.rules")

Sources = list[tuple[str, str]]


class NoRulesDir(OmnihubError):
    """Reload asked of a hub that has no `rules_dir` configured."""


def read_sources(path: str | Path) -> Sources:
    """(file, text) of every *.yaml / *.yml under `path` (sorted), or of `path` itself if a file.

    Read here rather than by rules.load_ruleset so the exact text that went live can be stored.
    """
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
                       and not any(s.startswith(".") for s in p.relative_to(root).parts))
        if not files:
            raise RulesError([Issue(str(root), 0, None, "no *.yaml or *.yml rule files here")])
    elif root.is_file():
        files = [root]
    else:
        raise RulesError([Issue(str(root), 0, None, "no such file or directory")])
    try:
        return [(str(f), f.read_text(encoding="utf-8")) for f in files]
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([Issue(str(root), 0, None, f"cannot read: {exc}")]) from None


def compile_sources(sources: Sources, channels: Collection[str] | None = None) -> Ruleset:
    return Ruleset(load_sources(sources, channels=channels))


def load_dir(path: str | Path, channels: Collection[str] | None = None) -> tuple[Ruleset, Sources]:
    sources = read_sources(path)
    return compile_sources(sources, channels), sources


async def record_ruleset(engine: AsyncEngine, ruleset: Ruleset, sources: Sources, now: datetime) -> None:
    async with writer(engine).begin() as conn:
        known = (await conn.execute(select(rulesets.c.version).where(rulesets.c.version == ruleset.version))).first()
        if known is None:
            await conn.execute(insert(rulesets).values(
                version=ruleset.version, timezone=ruleset.timezone, loaded_at=now,
                sources=json.dumps(sources, ensure_ascii=False)))


def _channels(app: web.Application) -> Collection[str]:
    return app[keys.VALIDATION_CONTEXT][CHANNELS_KEY]


def clock_of(app: web.Application) -> Callable[[], datetime]:
    return app.get(keys.CLOCK) or (lambda: datetime.now(UTC))


def warn_unknown_templates(ruleset: Ruleset, templates: TemplateSet) -> None:
    """Add a warning for each send_message/auto_reply naming a template the hub does not have: its
    messages would fail at send time (kept `failed` with `unknown_template`), so say so at load."""
    def named(actions: tuple[Any, ...]) -> list[str]:
        found = []
        for action in actions:
            if isinstance(action, SendMessage | AutoReply):
                found.append(action.template)
            elif isinstance(action, StartTimer):
                found.extend(named(action.then))
        return found

    for rule in ruleset.rules:
        for name in named(rule.then):
            if not templates.has(name):
                ruleset.warnings.append(f"{rule.file}:{rule.line}: [{rule.name}] template {name!r} is not configured "
                                        f"(templates / templates_dir): its messages will fail")


async def load_rules(rules_dir: str | Path, channels: Collection[str], engine: AsyncEngine, now: datetime,
                     templates: TemplateSet | None = None) -> Ruleset:
    """Read and compile `rules_dir` (RulesError lists every issue), warn about templates the hub does
    not have, and record the ruleset's text under its version."""
    ruleset, sources = await asyncio.to_thread(load_dir, rules_dir, channels)
    if templates is not None:
        warn_unknown_templates(ruleset, templates)
    await record_ruleset(engine, ruleset, sources, now)
    return ruleset


async def reload_rules(app: web.Application) -> Ruleset:
    """Re-read `rules_dir`; on success swap it in and return it. RulesError leaves the old rules."""
    rules_dir = app[keys.SETTINGS].rules_dir
    if rules_dir is None:
        raise NoRulesDir("no rules_dir is configured; set rules_dir (OMNIHUB_RULES_DIR) to load rules")
    ruleset = await load_rules(rules_dir, _channels(app), app[keys.ENGINE], clock_of(app)(), app[keys.TEMPLATES])
    previous = app[keys.RULES].swap(ruleset)
    log.info("rules reloaded", extra={"version": ruleset.version,
                                      "previous": previous.version if previous else None})
    return ruleset


async def rules_ctx(app: web.Application) -> AsyncIterator[None]:
    """Load the configured rules; a bad directory stops the start-up with every issue listed."""
    rules_dir = app[keys.SETTINGS].rules_dir
    live = LiveRules()
    app[keys.RULES] = live
    if rules_dir is not None:
        ruleset = await load_rules(rules_dir, _channels(app), app[keys.ENGINE], clock_of(app)(), app[keys.TEMPLATES])
        live.swap(ruleset)
        log.info("rules loaded", extra={"version": ruleset.version, "rules": len(ruleset.rules)})
        for warning in ruleset.warnings:
            log.warning("rules warning", extra={"warning": warning})
    loop = asyncio.get_running_loop()
    sighup = bool(app.get(keys.RELOAD_ON_SIGHUP))
    if sighup:
        loop.add_signal_handler(signal.SIGHUP, _on_sighup, app)
    yield
    if sighup:
        loop.remove_signal_handler(signal.SIGHUP)


_reloads: set[asyncio.Task[None]] = set()


def _on_sighup(app: web.Application) -> None:
    task = asyncio.get_running_loop().create_task(reload_logged(app))
    _reloads.add(task)
    task.add_done_callback(_reloads.discard)


async def reload_logged(app: web.Application) -> None:
    """What SIGHUP runs: a reload whose refusal is logged with every issue, never raised."""
    try:
        await reload_rules(app)
    except RulesError as exc:
        log.error("rules reload refused; the running rules stay", extra={"issues": [str(i) for i in exc.issues]})
    except NoRulesDir as exc:
        log.warning(str(exc))


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    live = app[keys.RULES]
    scheduler = Scheduler(app[keys.ENGINE], lambda: live.ruleset, clock=clock_of(app),
                          on_commit=app[keys.RELAY].notify, segment_set=app[keys.PIPELINE].policy.segments)
    app[keys.SCHEDULER] = scheduler
    app[keys.LOOPS].add(scheduler.supervised)
    await scheduler.start()
    yield
    await scheduler.stop()
