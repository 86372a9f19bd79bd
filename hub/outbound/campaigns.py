"""Campaigns: one templated message to every customer of a segment, and what came of it (DESIGN
section 8).

`POST /v1/campaigns` stores a campaign; at `start_at` the runner walks the live profiles in id order,
a chunk per transaction, and queues a message for each one in the segment through hub.outbound, so
each gets the same consent, channel choice, template and quiet-hours treatment as any message.
Refusals (no consent, no channel) are counted by reason. A throttle spreads the messages'
`not_before` over time. Stats come from the messages themselves (sent, delivered, failed) and from
the timeline: a recipient who contacted the hub on any channel within the response window
responded, one who bought in store (a POS interaction) converted. When every message has left the
queue the campaign is completed and `campaign.completed` goes to the outbox with its figures.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import Connection, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.base import MessagePurpose
from hub.broker.events import event_row
from hub.ids import new_id
from hub.outbound.messages import ChannelName, MessageRequest, OutboundRefused, accept
from hub.outbound.templates import TemplateSet
from hub.profiles.segments import SEGMENTS, SegmentSet
from hub.settings import QuietHours
from hub.storage.batch import decode_profile, insert_rows
from hub.storage.engine import writer
from hub.storage.models import interactions, outbox, profiles
from hub.storage.outbound_models import campaigns, messages
from hub.tasks import PollingWorker
from rules.segments import SegmentError
from schemas import EventType

_CHUNK = 500
_WHEN = "campaign"


class CampaignRequest(BaseModel):
    """`POST /v1/campaigns`: whom (a segment, or a condition on `profile.*`), what, when, how fast."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    segment: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    when: dict[str, Any] | None = Field(None, description="a rules condition on profile.* fields")
    template: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    variables: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], Any] = Field(default_factory=dict)
    channel: Literal["auto"] | list[ChannelName] = "auto"
    purpose: MessagePurpose = MessagePurpose.MARKETING
    start_at: AwareDatetime | None = None  # none: now
    per_minute: int | None = Field(None, ge=1, le=1_000_000)  # none: as fast as the channels take them
    response_window_days: int = Field(7, ge=1, le=90)

    @model_validator(mode="after")
    def _audience(self) -> CampaignRequest:
        if (self.segment is None) == (self.when is None):
            raise ValueError("give exactly one of `segment` and `when`")
        return self


class CampaignRefused(OutboundRefused):
    pass


def audience(spec: CampaignRequest) -> Callable[[dict[str, Any], datetime], bool]:
    """Whether a profile row is in the campaign's audience; a bad `when` is refused naming it."""
    if spec.segment is not None:
        name = spec.segment
        return lambda row, now: name in (row.get(SEGMENTS) or [])
    try:
        condition = SegmentSet({_WHEN: spec.when})
    except SegmentError as exc:
        raise CampaignRefused(422, "validation_failed", "when", str(exc)) from None
    return lambda row, now: _WHEN in condition.membership(row, now)


def create(conn: Connection, spec: CampaignRequest, templates: TemplateSet, now: datetime) -> dict[str, Any]:
    if not templates.has(spec.template):
        raise CampaignRefused(422, "unknown_template", "template",
                              f"no template {spec.template!r}; known: {', '.join(templates.names()) or 'none configured'}")
    audience(spec)  # refuse a bad condition now, not when it starts
    row = {"id": new_id(), "name": spec.name, "state": "scheduled", "spec": spec.model_dump_json(),
           "start_at": spec.start_at or now, "cursor": None, "targeted": 0, "queued": 0, "skipped": "{}",
           "created_at": now, "started_at": None, "completed_at": None}
    conn.execute(campaigns.insert().values(**row))
    return row


def stats(conn: Connection, campaign_id: uuid.UUID, now: datetime) -> dict[str, Any] | None:
    row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).mappings().first()
    if row is None:
        return None
    spec = CampaignRequest.model_validate_json(row["spec"])
    m = messages.c
    by_state = dict(conn.execute(select(m.state, func.count()).where(m.campaign_id == campaign_id)
                                 .group_by(m.state)).all())
    sent_to = conn.execute(select(m.profile_id, m.created_at).where(
        m.campaign_id == campaign_id, m.state.in_(("sent", "delivered", "read")), m.profile_id.is_not(None))).all()
    responded, converted = _outcomes(conn, sent_to, timedelta(days=spec.response_window_days))
    return {
        "id": str(row["id"]), "name": row["name"], "state": row["state"], "template": spec.template,
        "segment": spec.segment, "when": spec.when, "purpose": spec.purpose.value,
        "start_at": row["start_at"].isoformat(), "targeted": row["targeted"], "queued": row["queued"],
        "skipped": json.loads(row["skipped"]),
        "waiting": by_state.get("queued", 0) + by_state.get("sending", 0),
        "sent": sum(by_state.get(s, 0) for s in ("sent", "delivered", "read")),
        "delivered": by_state.get("delivered", 0) + by_state.get("read", 0),
        "failed": by_state.get("failed", 0), "responded": responded, "converted": converted,
        "created_at": row["created_at"].isoformat(),
        "started_at": row["started_at"].isoformat() if row["started_at"] else None,
        "completed_at": row["completed_at"].isoformat() if row["completed_at"] else None,
    }


def _outcomes(conn: Connection, sent_to: list[Any], window: timedelta) -> tuple[int, int]:
    """Recipients who contacted us (any channel) / bought in store (POS) within the window after
    their message was queued."""
    since = {pid: created for pid, created in sent_to}
    if not since:
        return 0, 0
    i = interactions.c
    responded: set[uuid.UUID] = set()
    converted: set[uuid.UUID] = set()
    ids = list(since)
    for start in range(0, len(ids), _CHUNK):
        # The document only for POS rows: telling a purchase from a refund needs its total.
        rows = conn.execute(select(i.profile_id, i.channel, i.received_at,
                                   case((i.channel == "pos", i.document), else_=None)).where(
            i.profile_id.in_(ids[start:start + _CHUNK]), i.direction == "inbound",
            i.received_at >= min(since.values())))
        for pid, channel, received, pos_document in rows:
            if since[pid] < received <= since[pid] + window:
                responded.add(pid)
                if channel == "pos" and not _is_refund(pos_document):
                    converted.add(pid)
    return len(responded), len(converted)


def _is_refund(document: str | None) -> bool:
    """A POS interaction with a negative total is money returned (adapters/pos.py), not a purchase."""
    total = (json.loads(document or "{}").get("transaction") or {}).get("total")
    return total is not None and Decimal(str(total)) < 0


class CampaignRunner(PollingWorker):
    """Starts due campaigns, queues their messages a chunk at a time, completes them."""

    name = "omnihub-campaigns"

    def __init__(self, engine: AsyncEngine, adapters: Callable[[], dict[str, str]], templates: TemplateSet, *,
                 quiet_hours: QuietHours | None, notify: Callable[[], None], poll_interval_s: float = 1.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__(poll_interval_s=poll_interval_s)
        self._engine = engine
        self._adapters = adapters
        self._templates = templates
        self._quiet_hours = quiet_hours
        self._notify = notify  # the dispatcher
        self._clock = clock

    async def step(self) -> bool:
        """Complete the campaigns whose messages have all left the queue, then queue one chunk of
        the oldest due campaign; True if there is more to queue."""
        now = self._clock()
        c = campaigns.c
        async with self._engine.connect() as conn:
            sending = (await conn.execute(select(campaigns).where(c.state == "sending"))).mappings().all()
            row = (await conn.execute(select(campaigns).where(
                c.state.in_(("scheduled", "running")), c.start_at <= now)
                .order_by(c.start_at).limit(1))).mappings().first()
        for done in sending:
            async with writer(self._engine).begin() as conn:  # type: ignore[union-attr]
                await conn.run_sync(_complete_if_done, dict(done), now)
        if row is None:
            return False
        async with writer(self._engine).begin() as conn:  # type: ignore[union-attr]
            queued = await conn.run_sync(self._chunk, dict(row), now)
        if queued:
            self._notify()
        return True

    def _chunk(self, conn: Connection, row: dict[str, Any], now: datetime) -> int:
        spec = CampaignRequest.model_validate_json(row["spec"])
        member = audience(spec)
        p = profiles.c
        query = select(profiles).where(p.merged_into.is_(None), p.erased_at.is_(None)).order_by(p.id).limit(_CHUNK)
        if row["cursor"] is not None:
            query = query.where(p.id > row["cursor"])
        batch = [decode_profile(r) for r in conn.execute(query).mappings()]
        started = row["started_at"] or now
        targeted, queued, skipped = row["targeted"], row["queued"], Counter(json.loads(row["skipped"]))
        adapters = self._adapters()
        for profile in batch:
            if not member(profile, now):
                continue
            targeted += 1
            request = MessageRequest(profile_id=profile["id"], channel=spec.channel, purpose=spec.purpose,
                                     template=spec.template, variables=spec.variables,
                                     idempotency_key=f"campaign:{row['id']}:{profile['id']}")
            # The throttle: the n-th message of the campaign goes n/per_minute minutes after the start.
            earliest = started + timedelta(minutes=(targeted - 1) / spec.per_minute) if spec.per_minute else None
            try:
                accept(conn, request, adapters=adapters, now=now, templates=self._templates,
                       quiet_hours=self._quiet_hours, campaign_id=row["id"], not_before=earliest)
            except OutboundRefused as exc:
                skipped[exc.error] += 1
                continue
            queued += 1
        done = len(batch) < _CHUNK
        conn.execute(update(campaigns).where(campaigns.c.id == row["id"]).values(
            state="sending" if done else "running", started_at=started,
            cursor=batch[-1]["id"] if batch else row["cursor"],
            targeted=targeted, queued=queued, skipped=json.dumps(dict(skipped))))
        return queued - row["queued"]


def _complete_if_done(conn: Connection, row: dict[str, Any], now: datetime) -> None:
    m = messages.c
    waiting = conn.execute(select(func.count()).select_from(messages).where(
        m.campaign_id == row["id"], m.state.in_(("queued", "sending")))).scalar_one()
    if waiting:
        return
    conn.execute(update(campaigns).where(campaigns.c.id == row["id"], campaigns.c.state == "sending")
                 .values(state="completed", completed_at=now))
    figures = stats(conn, row["id"], now) or {}
    data = {k: figures.get(k) for k in ("id", "name", "targeted", "queued", "skipped", "sent", "delivered", "failed")}
    insert_rows(conn, outbox, [event_row(EventType.CAMPAIGN_COMPLETED, now=now, data=data)])


def view_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """The answer to POST /v1/campaigns."""
    return {"id": str(row["id"]), "name": row["name"], "state": row["state"], "start_at": row["start_at"].isoformat()}
