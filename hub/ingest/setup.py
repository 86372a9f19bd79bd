"""The ingest pipeline as the hub runs it: one definition for `omnihub serve` (hub.app) and for
commands that ingest on their own (`omnihub import pos`), so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.ingest.consent_step import consent_step
from hub.ingest.pipeline import Pipeline
from hub.ingest.routing_step import RoutingStep
from hub.ingest.rules_step import RulesStep
from hub.profiles.identity import ProfilePolicy
from hub.profiles.segments import SegmentSet
from hub.settings import Settings


def ingest_pipeline(settings: Settings, engine: AsyncEngine, rules: RulesStep, *,
                    on_commit: Sequence[Callable[[], None]] = ()) -> Pipeline:
    """The steps in order: rules first (later steps read ctx.actions: route, escalate), consent,
    then routing, which turns the rules' route action into a task."""
    return Pipeline(
        engine,
        steps=[rules, consent_step, RoutingStep(settings.routing)],
        batch_max=settings.ingest_batch_max,
        policy=ProfilePolicy(settings.merge_policy, settings.value_score, SegmentSet(settings.segments)),
        on_commit=on_commit,
    )
