"""The outbound dispatcher: hands queued messages to their channel's adapter.

A message is claimed with a lease (state `sending`), so a hub that dies mid-send leaves it to be
claimed again when the lease runs out: delivery is at least once, because no provider we send
through takes an idempotency key. A transient failure is retried a few times in the call (tenacity),
then the message goes back to the queue with a growing delay until `max_attempts` dispatches; a
permanent failure, or the last attempt, ends it as `failed` with a `message.failed` event. A sent
message is also recorded as an outbound interaction (`interaction.sent.<channel>`) on the
customer's timeline, in the thread the adapter reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from adapters.base import (
    ChannelAdapter,
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from hub.outbound.messages import STATE_RANK, emit
from hub.storage.engine import writer
from hub.storage.outbound_models import messages
from hub.tasks import Supervised, cancel_and_wait
from schemas import Content, Direction, EventType, Identifier, Interaction, Kind, Party

log = logging.getLogger("omnihub.outbound")


class Recorder(Protocol):
    """What records a sent message on the customer's timeline: the ingest pipeline (hub.ingest),
    handed in by the app so outbound, below ingest, does not import it."""

    async def ingest(self, interaction: Interaction, /) -> Any: ...


class Dispatcher:
    def __init__(self, engine: AsyncEngine, adapters: dict[str, ChannelAdapter], pipeline: Recorder, *,
                 notify: Callable[[], None], metrics: Any, max_attempts: int = 5, concurrency: int = 16,
                 poll_interval_s: float = 1.0, lease_s: float = 120.0, retry_wait_s: float = 0.5,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._engine = engine
        self._adapters = adapters
        self._pipeline = pipeline
        self._notify = notify
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._poll = poll_interval_s
        self._lease = timedelta(seconds=lease_s)
        self._retry_wait = retry_wait_s
        self._clock = clock
        self._wake = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()
        self.supervised = Supervised("outbound-dispatcher", self._run)

    def notify(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        await self.supervised.start()

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop claiming; give sends under way `grace_s` to finish. One still running then is
        cancelled: its lease runs out and it is sent again, rather than holding up shutdown."""
        await self.supervised.stop()
        if self._sending:
            _, late = await asyncio.wait(set(self._sending), timeout=grace_s)
            for task in late:
                await cancel_and_wait(task)

    async def _run(self) -> None:
        """The supervised body: claim due messages and hand each to a task of its own."""
        while True:
            self._wake.clear()
            claimed = await self._claim(self._concurrency - len(self._sending))
            self.supervised.progressed()
            for row in claimed:
                task = asyncio.create_task(self._deliver(row))
                self._sending.add(task)
                task.add_done_callback(self._done)
            if len(claimed) == 0 or len(self._sending) >= self._concurrency:
                with self.supervised.waiting(), contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Recording the outcome failed (the database went away): the lease runs out and the
            # message is sent again. Counted with the loop's outage, not logged per message.
            self.supervised.failed(task.exception())  # type: ignore[arg-type]
        self._wake.set()  # a free slot: claim more

    async def _claim(self, limit: int) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        now = self._clock()
        m = messages.c
        due = or_(and_(m.state == "queued", or_(m.lease_until.is_(None), m.lease_until <= now),
                       or_(m.not_before.is_(None), m.not_before <= now)),  # held for quiet hours
                  and_(m.state == "sending", m.lease_until <= now))
        async with writer(self._engine).begin() as conn:  # type: ignore[union-attr]
            rows = (await conn.execute(select(messages).where(due).order_by(m.created_at).limit(limit))).mappings().all()
            claimed = []
            for row in rows:
                # Optimistic: another hub sharing the database may claim the same row; one wins.
                held = m.lease_until.is_(None) if row["lease_until"] is None else m.lease_until == row["lease_until"]
                done = await conn.execute(update(messages).where(m.id == row["id"], m.state == row["state"], held).values(
                    state="sending", lease_until=now + self._lease, attempts=m.attempts + 1, updated_at=now))
                if done.rowcount == 1:
                    claimed.append({**row, "attempts": row["attempts"] + 1})
        return claimed

    async def _deliver(self, row: dict[str, Any]) -> None:
        adapter = self._adapters.get(row["adapter"])
        if adapter is None:
            await self._finish_failed(row, "adapter_not_running", f"adapter {row['adapter']} is not running")
            return
        message = _message(row)
        try:
            async for attempt in AsyncRetrying(retry=retry_if_exception_type(TransientSendError),
                                               stop=stop_after_attempt(3), reraise=True,
                                               wait=wait_exponential(multiplier=self._retry_wait, max=10)):
                with attempt:
                    result = await adapter.send(message)
        except PermanentSendError as exc:
            await self._finish_failed(row, exc.code or "permanent", str(exc))
            return
        except Exception as exc:  # TransientSendError after its retries, or an adapter bug
            if not isinstance(exc, TransientSendError):
                log.exception("adapter send raised", extra={"adapter": row["adapter"], "message_id": str(row["id"])})
            if row["attempts"] >= self._max_attempts:
                await self._finish_failed(row, getattr(exc, "code", None) or "retries_exhausted", str(exc))
            else:
                await self._requeue(row, exc)
            return
        await self._finish_sent(row, message, result)

    async def _finish_sent(self, row: dict[str, Any], message: OutboundMessage, result: SendResult) -> None:
        now = self._clock()
        async with writer(self._engine).begin() as conn:  # type: ignore[union-attr]
            await conn.run_sync(_mark_sent, row["id"], result, now)
        self._metrics.messages_sent.labels(row["channel"], "sent").inc()
        interaction = _sent_interaction(row, message, result, now)
        try:
            outcome = await self._pipeline.ingest(interaction)
        except Exception:
            log.exception("recording a sent message on the timeline failed", extra={"message_id": str(row["id"])})
            return
        async with writer(self._engine).begin() as conn:  # type: ignore[union-attr]
            await conn.execute(update(messages).where(messages.c.id == row["id"])
                               .values(interaction_id=outcome.interaction_id))

    async def _finish_failed(self, row: dict[str, Any], code: str, reason: str) -> None:
        now = self._clock()
        log.warning("outbound message failed", extra={"message_id": str(row["id"]), "channel": row["channel"],
                                                      "code": code})
        async with writer(self._engine).begin() as conn:  # type: ignore[union-attr]
            await conn.run_sync(_mark_failed, row, code, reason, now)
        self._metrics.messages_sent.labels(row["channel"], "failed").inc()
        self._notify()

    async def _requeue(self, row: dict[str, Any], exc: Exception) -> None:
        now = self._clock()
        delay = timedelta(seconds=min(300.0, self._retry_wait * 2 ** (row["attempts"] + 2)))
        log.info("outbound message will be retried", extra={"message_id": str(row["id"]),
                                                            "attempt": row["attempts"], "error": str(exc)[:200]})
        async with writer(self._engine).begin() as conn:  # type: ignore[union-attr]
            await conn.execute(update(messages).where(messages.c.id == row["id"], messages.c.state == "sending")
                               .values(state="queued", lease_until=now + delay, updated_at=now,
                                       error_message=str(exc)[:500]))


def _message(row: dict[str, Any]) -> OutboundMessage:
    request = json.loads(row["request"])
    return OutboundMessage(
        id=row["id"], channel=row["channel"], to=Identifier(type=row["to_type"], value=row["to_value"]),
        purpose=row["purpose"], subject=request.get("subject"), text=request.get("text"),
        html=request.get("html"), in_reply_to=request.get("in_reply_to"),
        references=tuple(request.get("references") or ()), conversation_key=request.get("conversation_key"),
        unsubscribe_url=request.get("unsubscribe_url"))


def _mark_sent(conn: Connection, message_id: Any, result: SendResult, now: datetime) -> None:
    m = messages.c
    state = conn.execute(select(m.state).where(m.id == message_id)).scalar()
    # A fast provider's "delivered" callback can land before this: keep the later state.
    new_state = "sent" if state is None or STATE_RANK.get(state, 0) < STATE_RANK["sent"] else state
    conn.execute(update(messages).where(m.id == message_id).values(
        state=new_state, provider=result.provider, provider_ref=result.provider_ref, lease_until=None,
        updated_at=now, error_code=None, error_message=None))


def _mark_failed(conn: Connection, row: dict[str, Any], code: str, reason: str, now: datetime) -> None:
    m = messages.c
    conn.execute(update(messages).where(m.id == row["id"]).values(
        state="failed", lease_until=None, error_code=code[:64], error_message=reason[:500], updated_at=now))
    emit(conn, EventType.MESSAGE_FAILED, row, now, error_code=code, error_message=reason[:500])


def _sent_interaction(row: dict[str, Any], message: OutboundMessage, result: SendResult,
                      now: datetime) -> Interaction:
    return Interaction(
        channel=row["channel"], direction=Direction.OUTBOUND, kind=Kind.MESSAGE, provider=result.provider,
        provider_ref=result.provider_ref, occurred_at=now,
        conversation_key=result.conversation_key or message.conversation_key,
        sender=Party(identifiers=[result.sender]) if result.sender else None,
        recipients=[Party(identifiers=[message.to])], subject=message.subject,
        content=Content(text=message.text, html=message.html),
        metadata={"message_id": str(row["id"]), "purpose": row["purpose"]})
