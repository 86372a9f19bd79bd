"""Messages the rules and the back office asked for: due `scheduled_actions` rows become queued
messages (DESIGN sections 6 and 8).

A rule's `send_message` and `auto_reply` (hub.automation.effects) and a templated `message.send` command
(hub.backoffice.command_store) are committed as `scheduled_actions` rows with the change that caused them.
This loop takes each due row and, in ONE transaction, queues its message through hub.outbound
(templates, channel choice, consent, quiet hours) and marks the row `done`, or `failed` with the
refusal in `outcome` (no consent, no channel, an unknown template, a missing variable). The message's
idempotency key is the row's, so a row taken twice (two hubs, a retried transaction) sends once.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.base import MessagePurpose
from hub.outbound.messages import MessageRequest, OutboundRefused, accept
from hub.outbound.templates import TemplateSet
from hub.settings import QuietHours
from hub.storage.engine import writer
from hub.storage.rules_models import scheduled_actions
from hub.tasks import PollingWorker
from schemas import Identifier

log = logging.getLogger("omnihub.scheduled_sends")

# The kind under which message.send commands (hub.backoffice) wait for this sender, beside rules'
# send_message and auto_reply actions in the same table: nothing is lost while no sender runs.
PENDING_SEND_KIND = "message.send"
SEND_KINDS = ("send_message", "auto_reply", PENDING_SEND_KIND)


class ScheduledSender(PollingWorker):
    name = "omnihub-scheduled-sends"

    def __init__(self, engine: AsyncEngine, adapters: Callable[[], dict[str, str]], templates: TemplateSet, *,
                 quiet_hours: QuietHours | None, notify: Callable[[], None], poll_interval_s: float = 1.0,
                 min_interval_s: float = 0.05, batch: int = 100,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__(poll_interval_s=poll_interval_s, min_interval_s=min_interval_s)
        self._engine = engine
        self._adapters = adapters
        self._templates = templates
        self._quiet_hours = quiet_hours
        self._notify = notify  # the dispatcher: a message was queued
        self._batch = batch
        self._clock = clock

    async def step(self) -> bool:
        return await self.run_due() >= self._batch

    async def run_due(self) -> int:
        """Take every due send (up to one batch); returns how many were taken."""
        now = self._clock()
        a = scheduled_actions.c
        async with self._engine.connect() as conn:
            due = (await conn.execute(
                select(scheduled_actions).where(a.state == "pending", a.kind.in_(SEND_KINDS), a.due_at <= now)
                .order_by(a.due_at).limit(self._batch))).mappings().all()
        queued = 0
        for row in due:
            async with writer(self._engine).begin() as conn:  # type: ignore[union-attr]
                queued += await conn.run_sync(self._take, dict(row), now)
        if queued:
            self._notify()
        return len(due)

    def _take(self, conn: Connection, row: dict[str, Any], now: datetime) -> int:
        a = scheduled_actions.c
        # Claimed in the transaction that queues the message: another hub's attempt finds it taken.
        claimed = conn.execute(update(scheduled_actions).where(a.id == row["id"], a.state == "pending")
                               .values(state="taking"))
        if claimed.rowcount != 1:
            return 0
        try:
            message, created = accept(conn, _request(row), adapters=self._adapters(), now=now,
                                      templates=self._templates, quiet_hours=self._quiet_hours)
        except OutboundRefused as exc:
            outcome: dict[str, Any] = {"error": exc.error, "field": exc.field, "message": exc.message}
            log.warning("scheduled send refused", extra={"action_id": str(row["id"]), "kind": row["kind"],
                                                         "rule": row["rule"], "error": exc.error, "field": exc.field})
            _finish(conn, row["id"], "failed", outcome)
            return 0
        except ValueError as exc:  # a payload no MessageRequest can be made of (validation)
            _finish(conn, row["id"], "failed", {"error": "invalid", "field": "payload", "message": str(exc)})
            return 0
        _finish(conn, row["id"], "done", {"message_id": str(message["id"]), "channel": message["channel"],
                                          "created": created})
        return 1


def _request(row: dict[str, Any]) -> MessageRequest:
    payload = json.loads(row["payload"])
    key = f"action:{row['id']}"
    profile_id = row["profile_id"]
    match row["kind"]:
        case "send_message":
            channel = payload.get("channel") or "auto"
            return MessageRequest(channel=channel, profile_id=profile_id, template=payload["template"],
                                  purpose=MessagePurpose(payload.get("purpose") or "transactional"),
                                  idempotency_key=key)
        case "auto_reply":
            # On the interaction's own channel and thread; automatic, so never marketing.
            return MessageRequest(in_reply_to=row["interaction_id"], template=payload["template"],
                                  idempotency_key=key)
        case _:  # a message.send command kept for the template module (hub.backoffice.command_store)
            to = payload.get("to") or {}
            ident = to.get("identifier")
            return MessageRequest(
                channel=payload.get("channel") or "auto",
                to=Identifier.model_validate(ident) if ident else None,
                profile_id=uuid.UUID(to["profile_id"]) if to.get("profile_id") else None,
                template=payload.get("template"), variables=payload.get("variables") or {},
                text=payload.get("body"), purpose=MessagePurpose(payload.get("purpose") or "transactional"),
                idempotency_key=f"command:{payload['message_id']}")


def _finish(conn: Connection, action_id: Any, state: str, outcome: dict[str, Any]) -> None:
    conn.execute(update(scheduled_actions).where(scheduled_actions.c.id == action_id)
                 .values(state=state, outcome=json.dumps(outcome, ensure_ascii=False)))
