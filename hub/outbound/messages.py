"""Outbound messages: accepting a request, and the state a message goes through (DESIGN section 8).

`accept` stores a request as a queued message in one transaction (after consent checks), so a 202
means it will be sent even if the hub restarts; hub.outbound.dispatcher hands queued messages to their
channel's adapter. `record_status` applies a provider's status report and emits `message.delivered`
or `message.failed` in the same transaction. Statements run on a sync Connection (run_sync), as the
profile API's do.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import Connection, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.base import DeliveryStatus, MessagePurpose, StatusUpdate
from hub.broker.events import event_row
from hub.ids import new_id
from hub.outbound.quiet_hours import held_until, zone_of
from hub.outbound.templates import TemplateProblem, TemplateSet, template_values
from hub.profiles import store as profiles_repo
from hub.settings import QuietHours
from hub.storage.engine import writer
from hub.storage.models import interactions, outbox
from hub.storage.outbound_models import messages
from schemas import EventType, Identifier, Interaction, OmnihubError

# Later states win; a late "sent" callback never undoes "delivered". Failed is final.
STATE_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4, "failed": 5}
# What identifier a channel's messages go to, for the built-in channels (adapters may add their own).
RECIPIENT_TYPE = {"sms": "phone", "voice": "phone", "email": "email", "fax": "fax", "chat": "chat_visitor"}


ChannelName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class OutboundRefused(OmnihubError):
    def __init__(self, status: int, error: str, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.field, self.message = status, error, field, message


class MessageRequest(BaseModel):
    """`POST /v1/messages`: to whom (an identifier, a profile, or the sender of the interaction
    answered), on which channel, what."""

    model_config = ConfigDict(extra="forbid")

    # One channel, channels in order of preference, or "auto" (the profile's preferred channels,
    # then every running one): the first that runs here, reaches the customer and has consent.
    channel: ChannelName | list[ChannelName] | None = None
    to: Identifier | None = None
    profile_id: uuid.UUID | None = None
    in_reply_to: uuid.UUID | None = Field(None, description="an interaction id: answer it, in its thread")
    purpose: MessagePurpose = MessagePurpose.TRANSACTIONAL
    subject: Annotated[str, StringConstraints(max_length=998)] | None = None
    text: Annotated[str, StringConstraints(max_length=65_536)] | None = None
    html: Annotated[str, StringConstraints(max_length=1_048_576)] | None = None
    unsubscribe_url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    # A template (hub.outbound.templates) instead of subject/text/html, rendered for the channel chosen,
    # with these variables plus the customer's `profile` and the answered `interaction`.
    template: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    variables: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], Any] = Field(default_factory=dict)
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None

    @model_validator(mode="after")
    def _addressed(self) -> MessageRequest:
        if self.to is None and self.profile_id is None and self.in_reply_to is None:
            raise ValueError("give `to`, `profile_id` or `in_reply_to`")
        if self.template is not None and (self.text or self.html or self.subject):
            raise ValueError("give `template` or the content (`subject`, `text`, `html`), not both")
        if self.template is None and not (self.text or self.html):
            raise ValueError("give `text`, `html` or `template`")
        return self


def accept(conn: Connection, req: MessageRequest, *, adapters: dict[str, str], now: datetime,
           templates: TemplateSet | None = None, quiet_hours: QuietHours | None = None,
           campaign_id: uuid.UUID | None = None, not_before: datetime | None = None) -> tuple[dict, bool]:
    """Store the request as a queued message. Returns (message row, created). `adapters` maps each
    channel that has a running adapter to that adapter's name. A marketing message accepted inside
    the customer's quiet hours is queued with `not_before` at their end (or at the given
    `not_before`, a campaign's throttle, if later)."""
    m = messages.c
    if req.idempotency_key:
        found = conn.execute(select(messages).where(m.idempotency_key == req.idempotency_key)).mappings().first()
        if found is not None:
            return dict(found), False
    thread: dict[str, Any] = {}
    channel, to = req.channel, req.to
    answered: Interaction | None = None
    carries = _template_check(req.template, templates)
    if req.in_reply_to is not None:
        answered = _answered(conn, req.in_reply_to)
        if isinstance(channel, list) or channel == "auto":
            raise OutboundRefused(422, "validation_failed", "channel",
                                  "a reply goes on one channel: give one, or none for the answered one's")
        channel = channel or answered.channel
        if channel == answered.channel:
            thread = {"in_reply_to": answered.provider_ref, "conversation_key": answered.conversation_key,
                      "references": _references(answered)}
        if to is None and req.profile_id is None:
            to = _reply_address(answered, RECIPIENT_TYPE.get(channel or ""))
    if channel is None:
        raise OutboundRefused(422, "validation_failed", "channel", "give `channel` (or `in_reply_to`)")
    if isinstance(channel, list) or channel == "auto":
        chosen = _choose_channel(conn, channel, to, req.profile_id, adapters, req.purpose, carries)
        if chosen is None:
            raise OutboundRefused(422, "no_channel", "channel",
                                  f"none of {channel} runs here, reaches this customer and has consent")
        channel = chosen
    if channel not in adapters:
        raise OutboundRefused(422, "no_adapter", "channel",
                              f"no adapter runs for channel {channel!r}; running: {', '.join(sorted(adapters)) or 'none'}")
    profile_id = req.profile_id
    if to is None:
        to = _profile_address(conn, profile_id, RECIPIENT_TYPE.get(channel))
    if profile_id is None:
        profile_id = profiles_repo.find_by_identifier(conn, to.key)
    profile = None
    if profile_id is not None:
        _check_consent(conn, profile_id, channel, req.purpose)
        profile = profiles_repo.get(conn, profile_id)
    request = req.model_dump(mode="json", exclude_none=True, include={"subject", "text", "html", "unsubscribe_url"})
    if req.template is not None:
        assert templates is not None  # _template_check refused it otherwise
        request.update(_render(templates, req, channel, profile, answered))
    if quiet_hours is not None and req.purpose is MessagePurpose.MARKETING:
        zone = zone_of(profile.get("timezone") if profile else None, quiet_hours.timezone)
        # Quiet hours are judged at the moment it would go: a throttled message may leave them.
        quiet_end = held_until(not_before or now, quiet_hours.start, quiet_hours.end, zone)
        not_before = quiet_end or not_before
    row = {"id": new_id(), "channel": channel, "adapter": adapters[channel], "profile_id": profile_id,
           "to_type": to.type.value, "to_value": to.value, "purpose": req.purpose.value, "state": "queued",
           "request": json.dumps({**request, **thread}), "idempotency_key": req.idempotency_key,
           "in_reply_to": req.in_reply_to, "attempts": 0, "not_before": not_before, "campaign_id": campaign_id,
           "created_at": now, "updated_at": now}
    conn.execute(messages.insert().values(**row))
    return row, True


def accept_command(conn: Connection, cmd: Any, message_id: str, *, adapters: dict[str, str],
                   now: datetime, templates: TemplateSet | None = None,
                   quiet_hours: QuietHours | None = None) -> dict[str, Any]:
    """A `message.send` command (schemas.commands.MessageSend) as a queued message; the command's
    message_id is its idempotency key, so a redelivered command queues nothing twice."""
    try:
        req = MessageRequest(channel=cmd.channel, to=cmd.to.identifier, profile_id=cmd.to.profile_id,
                             purpose=cmd.purpose, text=cmd.body, template=cmd.template, variables=cmd.variables,
                             idempotency_key=f"command:{message_id}")
        row, created = accept(conn, req, adapters=adapters, now=now, templates=templates, quiet_hours=quiet_hours)
    except OutboundRefused as exc:
        return {"queued": False, "error": exc.error, "field": exc.field, "message": exc.message}
    return {"queued": True, "message_id": str(row["id"]), "channel": row["channel"], "created": created}


def _choose_channel(conn: Connection, wanted: str | list[str], to: Identifier | None,
                    profile_id: uuid.UUID | None, adapters: dict[str, str], purpose: MessagePurpose,
                    carries: Callable[[str], bool] = lambda channel: True) -> str | None:
    known: set[str] = set()
    preferred: list[str] = []
    if to is not None:
        known.add(to.type.value)
        profile_id = profile_id or profiles_repo.find_by_identifier(conn, to.key)
    if profile_id is not None:
        try:
            profile = profiles_repo.get(conn, profile_id)
        except profiles_repo.ProfileError:
            return None
        if to is None:
            known.update(i["type"] for i in profile["identifiers"])
        preferred = list(profile.get("preferred_channels") or [])
    order = [*preferred, *adapters] if wanted == "auto" else list(wanted)
    for channel in dict.fromkeys(order):
        if channel not in adapters or RECIPIENT_TYPE.get(channel, "") not in known or not carries(channel):
            continue
        if profile_id is not None:
            try:
                _check_consent(conn, profile_id, channel, purpose)
            except OutboundRefused:
                continue  # opted out here: the next channel in the order
        return channel
    return None


def record_status(conn: Connection, adapter: str, update_: StatusUpdate, *, now: datetime) -> bool:
    """Apply a provider's status report. False when no message of this adapter has that id."""
    m = messages.c
    query = select(messages).where(m.adapter == adapter)
    if update_.message_id is not None:
        query = query.where(m.id == update_.message_id)
    else:
        query = query.where(m.provider_ref == update_.provider_ref)
    row = conn.execute(query).mappings().first()
    if row is None:
        return False
    new = update_.status.value
    if STATE_RANK[new] <= STATE_RANK[row["state"]]:
        return True  # out-of-order or repeated callback: nothing new
    conn.execute(update(messages).where(m.id == row["id"]).values(
        state=new, provider_ref=row["provider_ref"] or update_.provider_ref,
        error_code=update_.error_code, error_message=(update_.error_message or "")[:500] or None,
        updated_at=now))
    if update_.status is DeliveryStatus.DELIVERED:
        emit(conn, EventType.MESSAGE_DELIVERED, row, now)
    elif update_.status is DeliveryStatus.FAILED:
        emit(conn, EventType.MESSAGE_FAILED, row, now,
             error_code=update_.error_code, error_message=update_.error_message)
    return True


def emit(conn: Connection, event_type: str, row: Any, now: datetime, **extra: Any) -> None:
    data = {"message_id": str(row["id"]), "channel": row["channel"], "purpose": row["purpose"],
            "provider_ref": row["provider_ref"], "interaction_id": _str(row["interaction_id"]),
            "in_reply_to": _str(row["in_reply_to"]), **{k: v for k, v in extra.items() if v is not None}}
    conn.execute(outbox.insert().values(**event_row(
        event_type, now=now, data=data, channel=row["channel"], subject=row["profile_id"])))


async def record_status_async(engine: AsyncEngine, adapter: str, update_: StatusUpdate,
                              notify: Callable[[], None], *, now: datetime) -> bool:
    async with writer(engine).begin() as conn:  # type: ignore[union-attr]
        known = await conn.run_sync(record_status, adapter, update_, now=now)
    notify()
    return known


def _answered(conn: Connection, interaction_id: uuid.UUID) -> Interaction:
    doc = conn.execute(select(interactions.c.document).where(interactions.c.id == interaction_id)).scalar()
    if doc is None:
        raise OutboundRefused(404, "not_found", "in_reply_to", f"no interaction {interaction_id}")
    return Interaction.model_validate_json(doc)


def _references(answered: Interaction) -> list[str]:
    earlier = answered.metadata.get("references")
    refs = str(earlier).split() if earlier else []
    return [*refs, answered.provider_ref] if answered.provider_ref else refs


def _reply_address(answered: Interaction, wanted: str | None) -> Identifier:
    for ident in answered.identifiers():
        if wanted is None or ident.type.value == wanted:
            return ident
    raise OutboundRefused(422, "no_address", "in_reply_to",
                          f"the interaction answered has no {wanted or 'usable'} address to reply to")


def _profile_address(conn: Connection, profile_id: uuid.UUID | None, wanted: str | None) -> Identifier:
    try:
        profile = profiles_repo.get(conn, profile_id)
    except profiles_repo.ProfileError as exc:
        raise OutboundRefused(404, "not_found", "profile_id", f"no live profile {profile_id}: {exc}") from None
    for ident in profile["identifiers"]:
        if wanted is None or ident["type"] == wanted:
            return Identifier.model_validate(ident)
    raise OutboundRefused(422, "no_address", "profile_id", f"the profile has no {wanted} identifier")


def _check_consent(conn: Connection, profile_id: uuid.UUID, channel: str, purpose: MessagePurpose) -> None:
    """Marketing needs an explicit opt-in; anything the customer opted out of (SMS STOP) is refused."""
    try:
        consents = profiles_repo.live(conn, profile_id)["consents"] or {}
    except profiles_repo.ProfileError as exc:
        raise OutboundRefused(409, "profile_unavailable", "profile_id", str(exc)) from None
    consent = consents.get(f"{channel}:{purpose.value}")
    granted = consent.get("granted") if isinstance(consent, dict) else None
    if granted is False or (purpose is MessagePurpose.MARKETING and granted is not True):
        raise OutboundRefused(409, "no_consent", "to",
                              f"no {channel}:{purpose.value} consent for this customer")


def _template_check(name: str | None, templates: TemplateSet | None) -> Callable[[str], bool]:
    """Refuse an unknown template before anything else; the channels it can be rendered for."""
    if name is None:
        return lambda channel: True
    if templates is None or not templates.has(name):
        known = ", ".join(templates.names()) if templates is not None and templates.names() else "none configured"
        raise OutboundRefused(422, "unknown_template", "template", f"no template {name!r}; known: {known}")
    return functools.partial(templates.carries, name)


def _render(templates: TemplateSet, req: MessageRequest, channel: str, profile: dict[str, Any] | None,
            answered: Interaction | None) -> dict[str, str]:
    seen = None if answered is None else {
        "id": str(answered.id), "channel": answered.channel, "subject": answered.subject,
        "text": answered.content.text if answered.content is not None else None}
    try:
        rendered = templates.render(req.template or "", channel, template_values(req.variables, profile, seen))
    except TemplateProblem as exc:
        raise OutboundRefused(422, "template_failed", exc.field, exc.message) from None
    if not (rendered.text or rendered.html):
        raise OutboundRefused(422, "template_failed", "template", f"template {req.template!r} rendered empty")
    return {part: value for part, value in
            (("subject", rendered.subject), ("text", rendered.text), ("html", rendered.html)) if value}


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
