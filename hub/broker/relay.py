"""The outbox relay: publishes committed events to RabbitMQ, marking them only after the confirm.

Rows are read in commit-sequence order and published on one channel, so a profile's events reach
the exchange in the order they happened. Batches are pipelined (the next is published while the
broker confirms the last). A broker outage ends the session; the relay reconnects with backoff and
re-reads every unconfirmed row, so an event is published at least once and never lost; consumers
dedupe on message_id. With no broker URL the relay does nothing and events wait in the outbox.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from hub.broker import outbox_store as repo
from hub.broker.amqp import BrokerUnavailable, ConfirmPublisher, InvalidMessage, OutgoingMessage
from hub.metrics import Metrics
from hub.storage.engine import writer
from hub.tasks import cancel_and_wait

log = logging.getLogger("omnihub.outbox")

MAX_IN_FLIGHT_BATCHES = 3  # batches awaiting confirms at once


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        amqp_url: str | None,
        exchange: str,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        backoff_max_s: float = 30.0,
        metrics: Metrics | None = None,
        publisher_factory: Callable[[str, str], ConfirmPublisher] | None = None,
    ) -> None:
        self._engine = writer(engine)
        self._url = amqp_url
        self._exchange = exchange
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._backoff_max_s = backoff_max_s
        self._metrics = metrics
        self._publisher_factory = publisher_factory or (lambda url, exchange: ConfirmPublisher(url, exchange))
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.state = "disabled" if not amqp_url else "starting"
        self.last_error: str | None = None
        self.published = 0

    def notify(self) -> None:
        """Called after a commit that wrote events: wake the relay now rather than at the next poll."""
        self._wake.set()

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "published": self.published, "last_error": self.last_error}

    async def start(self) -> None:
        if self._url:
            self._task = asyncio.create_task(self._run(), name="omnihub-outbox-relay")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        assert self._url is not None
        while True:
            publisher = await self._connect()
            try:
                await self._pump(publisher)
            except InvalidMessage:
                pass  # the row was set aside; start over from the first unconfirmed row
            except BrokerUnavailable as exc:
                self.state, self.last_error = "down", str(exc)
                log.warning("broker session ended; events wait in the outbox", extra={"error": str(exc)})
            finally:
                await publisher.close()

    async def _connect(self) -> ConfirmPublisher:
        """Connect, retrying with exponential backoff (a fresh schedule after every outage)."""
        retrying = AsyncRetrying(
            wait=wait_exponential_jitter(multiplier=0.1, max=self._backoff_max_s, jitter=min(1.0, self._backoff_max_s / 2)),
            retry=retry_if_exception_type(BrokerUnavailable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                self.state = "connecting"
                publisher = self._publisher_factory(self._url, self._exchange)
                await publisher.connect()
        self.state, self.last_error = "connected", None
        log.info("relay connected", extra={"exchange": self._exchange})
        return publisher

    def _log_retry(self, state) -> None:
        error = state.outcome.exception() if state.outcome else None
        self.state, self.last_error = "down", str(error)
        log.warning("broker unreachable, retrying", extra={"attempt": state.attempt_number, "error": str(error)})

    async def _pump(self, publisher: ConfirmPublisher) -> None:
        in_flight: collections.deque[tuple[asyncio.Future[Any], list[Any]]] = collections.deque()
        after_seq = 0
        try:
            while True:
                rows: list[Any] = []
                if len(in_flight) < MAX_IN_FLIGHT_BATCHES:
                    async with self._engine.connect() as conn:
                        rows = await repo.fetch_pending_events(conn, after_seq=after_seq, limit=self._batch_size)
                if rows:
                    after_seq = rows[-1].seq
                    # The AMQP timestamp is the publish time; the event's own time is in the CloudEvent.
                    messages = [
                        OutgoingMessage(routing_key=r.routing_key, body=r.body.encode(), message_id=str(r.event_id))
                        for r in rows
                    ]
                    in_flight.append((asyncio.ensure_future(publisher.publish_batch(messages)), rows))
                    continue
                if in_flight:
                    future, batch_rows = in_flight.popleft()
                    try:
                        outcome = await future
                    except InvalidMessage as exc:
                        # Retrying cannot help: keep the row with its reason, out of the queue.
                        await self._quarantine(batch_rows, exc)
                        raise
                    await self._mark(batch_rows, outcome.returned)
                    continue
                # Idle: start the next scan from the beginning, so a row whose transaction committed
                # after a later sequence number was read (PostgreSQL allows that) is not skipped.
                after_seq = 0
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)
                except TimeoutError:
                    pass
                if not publisher.is_open:
                    raise BrokerUnavailable("broker connection lost while idle")
        finally:
            for future, _ in in_flight:
                future.cancel()
            if in_flight:
                await asyncio.gather(*(f for f, _ in in_flight), return_exceptions=True)

    async def _quarantine(self, rows: list[Any], exc: InvalidMessage) -> None:
        log.error("outbox event cannot be published; kept with its reason",
                  extra={"event_id": exc.message_id, "error": str(exc)})
        seq = next((r.seq for r in rows if str(r.event_id) == exc.message_id), None)
        if seq is not None:
            async with self._engine.begin() as conn:
                await repo.mark_failed(conn, seq, str(exc), at=datetime.now(UTC))

    async def _mark(self, rows: list[Any], returned_ids: list[str]) -> None:
        now = datetime.now(UTC)
        returned = set(returned_ids)
        returned_seqs = [r.seq for r in rows if str(r.event_id) in returned] if returned else []
        async with self._engine.begin() as conn:
            await repo.mark_published(conn, [r.seq for r in rows], returned_seqs, at=now)
        self.published += len(rows)
        if self._metrics is not None:
            self._metrics.events_published.inc(len(rows) - len(returned_seqs))
            self._metrics.events_returned.inc(len(returned_seqs))
        if returned_seqs:
            keys = sorted({r.routing_key for r in rows if r.seq in set(returned_seqs)})
            log.warning("broker returned unroutable events; kept in the outbox as returned",
                        extra={"count": len(returned_seqs), "routing_keys": keys[:10]})
