"""Rules on the router's task triggers (`task.sla_breached`, `task.abandoned`; issue 5), run by the
router service (hub.assignment.router_service) as it flushes.

Three stages, so the router service stays a few lines:

- `collect`, under the flush lock: which of the flush's events fire rules, with the task as the
  rules see it (taken now, because the router goes on changing its Task objects);
- `apply`, inside the flush's transaction: evaluate and store the effects with the task events
  (publish -> outbox row with the task as data; send_message / auto_reply / start_timer /
  set_profile / add_segment -> the rows the ingest step writes, through hub.automation.effects;
  add_tag -> the stored interaction's tags);
- `escalate`, after the commit: the router changes the live task through its own API, and the
  next flush persists the change (task row, task_events, outbox) like any other transition.
  `escalate: {queue: ...}` transfers a still-waiting task (`task.transferred`); `escalate: {skills:
  [...]}` (with or without a queue) makes those skills the task's whole requirement
  (`task.escalated`), and `set_priority` gives it a new place in line (`task.reprioritized`), for
  a task still waiting or offered. `route` means nothing to a task that is already routed: dropped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from hub.automation.effects import attributed, plan, write_effects
from hub.broker.events import event_row
from hub.profiles.segments import SegmentSet, profile_view
from hub.storage.batch import insert_rows, load_profiles
from hub.storage.models import interactions, outbox
from routing import Router, RoutingError, Task, TaskEvent, TaskEventKind, TaskState
from rules import AddTag, Escalate, Publish, Ruleset, SetPriority, evaluate
from schemas import EventType, Interaction

log = logging.getLogger("omnihub.router.rules")

TRIGGERS = {TaskEventKind.SLA_BREACHED: EventType.TASK_SLA_BREACHED, TaskEventKind.ABANDONED: EventType.TASK_ABANDONED}
_APPLIED = (Publish, Escalate, AddTag, SetPriority)
_CHANGEABLE = (TaskState.WAITING, TaskState.OFFERED)


@dataclass
class Fired:
    """One task event that runs rules, with what the rules decided once applied."""

    trigger: str
    task: dict[str, Any]
    escalate_to: list[str] = field(default_factory=list)  # queues, in rule order
    changes: list[tuple[str, Escalate | SetPriority]] = field(default_factory=list)  # (rule, action)


@dataclass
class Batch:
    ruleset: Ruleset
    fired: list[Fired]


def collect(rules: Any, events: Sequence[Any], touched: dict[str, Task],
            view: Callable[[Task, TaskState], dict[str, Any]]) -> Batch | None:
    """The flush's events that fire task rules; None when there is nothing to evaluate.

    `rules` is the hub's LiveRules (or None), read once so a flush sees one ruleset version.
    """
    ruleset = getattr(rules, "ruleset", None)
    if ruleset is None:
        return None
    fired = []
    for ev in events:
        trigger = TRIGGERS.get(ev.kind) if isinstance(ev, TaskEvent) else None
        task = touched.get(ev.task_id) if trigger is not None else None
        if trigger is None or task is None:
            continue
        data = view(task, ev.state)
        waited = ev.details.get("waited_s")
        if waited is None and task.enqueued_at is not None:
            waited = ev.at - task.enqueued_at
        data.update(queue=ev.queue, waited=waited, waited_s=waited, trigger=trigger,
                    sla_s=ev.details.get("sla_s"))
        fired.append(Fired(trigger, data))
    return Batch(ruleset, fired) if fired else None


def apply(conn: Connection, batch: Batch | None, now: datetime, segment_set: SegmentSet | None = None) -> None:
    """Evaluate and store the effects, in the caller's (the flush's) transaction."""
    if batch is None:
        return
    ruleset = batch.ruleset
    for fired in batch.fired:
        task = fired.task
        pid = _uuid(task.get("profile_id"))
        iid = _uuid(task.get("interaction_id"))
        profile = load_profiles(conn, [pid]).get(pid) if pid is not None else None
        item = _interaction(conn, iid)
        try:  # a rule that cannot be evaluated must not wedge the router's flushes
            result = evaluate(ruleset, fired.trigger, interaction=item, profile=profile_view(profile),
                              task=task, now=now)
        except Exception:
            log.exception("task rules failed", extra={"task_id": task["id"], "trigger": fired.trigger})
            continue
        if not result.actions:
            continue
        pairs = attributed(result)
        events = []
        tags_changed = False
        for rule, action in pairs:
            match action:
                case Publish(event_type=event_type):
                    events.append(event_row(event_type, now=now, channel=task.get("channel"), subject=pid,
                                            data=task))
                case Escalate(queue=queue, skills=()) if queue is not None:
                    fired.escalate_to.append(queue)
                case Escalate() | SetPriority():
                    fired.changes.append((rule, action))
                case AddTag(tag=tag) if item is not None:
                    if tag not in item.tags:
                        item.tags.append(tag)
                        tags_changed = True
        insert_rows(conn, outbox, events)
        planned = plan([p for p in pairs if not isinstance(p[1], _APPLIED)], interaction=item,
                       profile_id=pid if profile is not None else None, now=now, ruleset_version=ruleset.version)
        if planned.needs_write():
            write_effects(conn, planned, key=None, profile_id=pid if profile is not None else None, now=now,
                          segment_set=segment_set)
        if tags_changed and item is not None:
            conn.execute(update(interactions).where(interactions.c.id == item.id).values(
                document=item.model_dump_json(exclude_none=True, by_alias=True)))


def escalate(router: Router, batch: Batch | None, wake: Callable[[], None]) -> None:
    """After the commit: apply what the rules decided to the live tasks, in rule order. A queue
    escalation moves a still-waiting task (the first one wins); skills and priorities change a task
    still waiting or offered."""
    if batch is None:
        return
    changed = False
    for fired in batch.fired:
        task_id = fired.task["id"]
        for rule, action in fired.changes:
            changed |= _change(router, task_id, rule, action)
        if not fired.escalate_to:
            continue
        queue = fired.escalate_to[0]
        try:
            if router.task(task_id).state is not TaskState.WAITING:
                continue
            router.transfer(task_id, queue=queue)
            changed = True
        except RoutingError:
            log.warning("rule escalation failed", extra={"task_id": task_id, "queue": queue}, exc_info=True)
    if changed:
        wake()  # the router loop flushes the changes' events


def _change(router: Router, task_id: str, rule: str, action: Escalate | SetPriority) -> bool:
    try:
        if router.task(task_id).state not in _CHANGEABLE:
            return False
        match action:
            case SetPriority(priority=priority):
                router.set_priority(task_id, priority, reason=rule)
            case Escalate(queue=queue, skills=skills):
                # "escalate to these skills": they become the whole requirement, as route's skills
                # are a task's own (level 1); the queue's requirement goes too, or a task stuck for
                # want of, say, a Korean speaker would stay stuck.
                router.escalate(task_id, skills=dict.fromkeys(skills, 1), replace_skills=True, queue=queue,
                                reason=rule)
    except RoutingError:
        log.warning("rule change to a live task failed", extra={"task_id": task_id, "rule": rule}, exc_info=True)
        return False
    return True


def _uuid(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def _interaction(conn: Connection, iid: uuid.UUID | None) -> Interaction | None:
    if iid is None:
        return None
    document = conn.execute(select(interactions.c.document).where(interactions.c.id == iid)).scalar()
    return Interaction.model_validate_json(document) if document is not None else None
