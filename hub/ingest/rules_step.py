"""The ingest step that runs the rules: evaluate before the commit, commit the effects with the
interaction (DESIGN section 1).

It runs inside the group-commit writer, so it does no I/O: tags and priority are set on the
interaction, `publish` becomes an outbox row, and everything else that must be stored (profile
changes, timers, messages waiting for the outbound module) becomes one write callable executed in
the interaction's transaction. When the interaction created its customer's profile, the
`profile.created` rules run too, after the interaction's own trigger, through the same machinery.
Every action is also left in `ctx.actions`, where the routing step
(after this one) reads `route` and `escalate`.
"""

from __future__ import annotations

import functools
from typing import Any

from hub.automation.effects import attributed, plan, watch_key, write_effects
from hub.automation.live import LiveRules, LoadedRules
from hub.ingest.batch_write import IngestContext
from hub.profiles.segments import profile_view
from rules import AddTag, SetPriority, evaluate
from schemas import Direction, EventType


class RulesStep:
    """IngestStep running the hub's live ruleset (hub.automation.live), which a reload may swap
    between batches or even mid-batch: each call reads it once, so an interaction sees one version."""

    def __init__(self, live: LiveRules | None = None) -> None:
        self.live = live if live is not None else LiveRules()
        # Set when a rule scheduled a message, so the hub wakes its sender after that commit only
        # (a wake-up after every commit cost 4-5% of ingest throughput in paired bench runs).
        self.sends_planned = False

    def __call__(self, ctx: IngestContext) -> None:
        loaded = self.live.loaded
        ruleset = loaded.ruleset
        if ruleset is None:  # no rules configured: the hub decides nothing
            return
        item = ctx.interaction
        inbound = item.direction is Direction.INBOUND
        trigger = EventType.INTERACTION_RECEIVED if inbound else EventType.INTERACTION_SENT
        profile = profile_view(ctx.profile) if ctx.profile is not None else _new_profile_view(ctx)
        item.ruleset_version = ruleset.version
        # The interaction's own trigger decides first, so its route and set_priority win over a
        # profile.created rule's; the new customer's rules add welcomes, tags and segments after.
        self._apply(ctx, loaded, trigger, profile)
        if ctx.profile_created:
            self._apply(ctx, loaded, EventType.PROFILE_CREATED, profile)

    def _apply(self, ctx: IngestContext, loaded: LoadedRules, trigger: str, profile: dict[str, Any] | None) -> None:
        ruleset, item = loaded.ruleset, ctx.interaction
        assert ruleset is not None
        result = evaluate(ruleset, trigger, interaction=item, profile=profile, now=ctx.now)
        priority_set = any(isinstance(a, SetPriority) for a in ctx.actions)
        for action in result.actions:
            if isinstance(action, AddTag):
                if action.tag not in item.tags:
                    item.tags.append(action.tag)
            elif isinstance(action, SetPriority) and not priority_set:
                # The first is the highest-priority rule's (Evaluation's contract): it wins.
                item.priority, priority_set = action.priority, True
        ctx.actions.extend(result.actions)
        pid = item.profile_id
        planned = plan(attributed(result), interaction=item, profile_id=pid, now=ctx.now,
                       ruleset_version=ruleset.version)
        names = loaded.cancels.get(trigger)
        if names:
            planned.cancel = (trigger, names)
        ctx.events.extend(planned.events)
        if planned.scheduled:
            self.sends_planned = True
        if planned.needs_write():
            key = watch_key(item.conversation_key, pid, item.id)
            ctx.writes.append(functools.partial(write_effects, planned=planned, key=key, profile_id=pid, now=ctx.now))


def _new_profile_view(ctx: IngestContext) -> dict[str, Any] | None:
    """What rules see of a profile this interaction just created (not yet a row to load)."""
    pid = ctx.interaction.profile_id
    if pid is None or not ctx.profile_created:
        return None
    sender = ctx.interaction.sender
    name = sender.display_name if sender is not None and ctx.interaction.direction is Direction.INBOUND else None
    return profile_view({"id": pid, "display_name": name, "attributes": {},
                         "created_at": ctx.now, "updated_at": ctx.now})
