"""The outbox relay: publishes committed events to RabbitMQ, marking them only after the confirm.

Rows are read in commit-sequence order and published on one channel, so a profile's events reach
the exchange in the order they happened. Batches are pipelined (the next is published while the
broker confirms the last). The relay is a supervised loop (hub.tasks): a broker outage ends the
connection, a database outage the round, anything else too, and the loop starts over with backoff
and re-reads every unconfirmed row, so an event is published at least once and never lost;
consumers dedupe on message_id. A broker that goes silent is noticed by heartbeats within seconds
(amqp_liveness.py). With no broker URL the relay does nothing and events wait in the outbox.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.broker import outbox_store as repo
from hub.broker.amqp import BrokerUnavailable, ConfirmPublisher, InvalidMessage, OutgoingMessage
from hub.metrics import Metrics
from hub.storage.engine import writer
from hub.tasks import Supervised

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
        heartbeat_s: int | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._engine = writer(engine)
        self._url = amqp_url
        self._exchange = exchange
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._heartbeat_s = heartbeat_s
        self._metrics = metrics
        self._claimant = repo.new_claimant()  # several hubs share the outbox: this relay's leases
        self._wake = asyncio.Event()
        self._publisher: ConfirmPublisher | None = None
        self.supervised = Supervised("outbox-relay", self._session)
        self.last_error: str | None = None  # the broker's, while it is down
        self.published = 0

    def notify(self) -> None:
        """Called after a commit that wrote events: wake the relay now rather than at the next poll."""
        self._wake.set()

    @property
    def state(self) -> str:
        """The broker as the relay sees it: disabled (no URL), connecting, connected or down."""
        if not self._url:
            return "disabled"
        if self._publisher is not None and self._publisher.is_open:
            return "connected"
        if self.last_error is not None:
            return "down"
        return "connecting"

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "published": self.published, "last_error": self.last_error}

    async def start(self) -> None:
        if self._url:
            await self.supervised.start()

    async def stop(self) -> None:
        await self.supervised.stop()
        await self._drop_publisher()

    async def _session(self) -> None:
        """The supervised body: connect unless connected, then publish until something fails. A
        database error keeps the broker connection for the next round; a broker error drops it."""
        publisher = await self._connected()
        try:
            await self._pump(publisher)
        except InvalidMessage:
            await self._drop_publisher()  # the row was set aside; start over from the first unconfirmed row
        except BrokerUnavailable as exc:
            self.last_error = str(exc)
            await self._drop_publisher()
            raise

    async def _connected(self) -> ConfirmPublisher:
        if self._publisher is not None and self._publisher.is_open:
            return self._publisher
        await self._drop_publisher()
        assert self._url is not None
        publisher = ConfirmPublisher(self._url, self._exchange, heartbeat_s=self._heartbeat_s,
                                     on_lost=self.notify)
        try:
            await publisher.connect()
        except BrokerUnavailable as exc:
            self.last_error = str(exc)
            await publisher.close()
            raise
        self._publisher, self.last_error = publisher, None
        return publisher

    async def _drop_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.close()

    async def _pump(self, publisher: ConfirmPublisher) -> None:
        in_flight: collections.deque[tuple[asyncio.Future[Any], list[Any]]] = collections.deque()
        after_seq = 0
        try:
            while True:
                rows: list[Any] = []
                if len(in_flight) < MAX_IN_FLIGHT_BATCHES:
                    async with self._engine.begin() as conn:
                        rows = await repo.claim_pending_events(conn, self._claimant, after_seq=after_seq,
                                                               limit=self._batch_size)
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
                self.supervised.progressed()  # caught up
                self._wake.clear()
                with self.supervised.waiting(), contextlib.suppress(TimeoutError):
                    # A lost connection wakes this too (the publisher's on_lost).
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)
                if not publisher.is_open:
                    raise publisher.failure or BrokerUnavailable("broker connection lost while idle")
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
        self.supervised.progressed()
        if self._metrics is not None:
            self._metrics.events_published.inc(len(rows) - len(returned_seqs))
            self._metrics.events_returned.inc(len(returned_seqs))
        if returned_seqs:
            keys = sorted({r.routing_key for r in rows if r.seq in set(returned_seqs)})
            log.warning("broker returned unroutable events; kept in the outbox as returned",
                        extra={"count": len(returned_seqs), "routing_keys": keys[:10]})
