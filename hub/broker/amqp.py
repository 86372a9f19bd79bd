"""Confirmed publishing to RabbitMQ from the event loop (DESIGN section 5).

pika's asyncio adapter is callback based; this module turns it into one awaitable call,
`ConfirmPublisher.publish_batch`, that returns only when the broker has confirmed every message
of the batch. The outbox relay marks rows published after that and, on `BrokerUnavailable`,
republishes the whole batch: delivery is at-least-once and consumers dedupe on `message_id`.

Ordering: batches are written to the channel in call order and a batch is never interleaved
with another, so events keep their outbox order on the wire even with several batches awaiting
confirms at once. Nothing here blocks the loop; reconnect and back-off belong to the caller
(connect() makes one attempt, so the relay's tenacity policy decides how often to retry).

The connection and its channel are in amqp_session.py, the writing of a batch and its confirms in
amqp_writes.py, the delivery-tag bookkeeping in confirms.py; this module is the publisher the
relay and the commands use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pika
from pika.exceptions import AMQPError

from hub.broker.amqp_liveness import ask_heartbeat
from hub.broker.amqp_session import _Session
from hub.broker.amqp_writes import APP_ID
from hub.broker.confirms import (
    CLOUDEVENTS_JSON,
    BrokerUnavailable,
    ConfirmTracker,
    InvalidMessage,
    OutgoingMessage,
    PublishOutcome,
    _Batch,
)

log = logging.getLogger(__name__)

# The publisher's public names, some defined in confirms.py and amqp_writes.py and re-exported here.
__all__ = ["APP_ID", "CLOUDEVENTS_JSON", "BrokerUnavailable", "ConfirmPublisher", "ConfirmTracker",
           "InvalidMessage", "OutgoingMessage", "PublishOutcome"]


def _abandon(fut: asyncio.Future[Any]) -> None:
    """Late confirms of an abandoned batch settle nothing, and its failure counts as seen."""
    if fut.done():
        if not fut.cancelled():
            fut.exception()
    else:
        fut.cancel()


class ConfirmPublisher:
    """Publishes batches to one exchange with publisher confirms, the mandatory flag and persistent
    delivery. Safe to call from several tasks at once; batches go out in call order."""

    def __init__(
        self,
        url: str,
        exchange: str,
        *,
        exchange_type: str = "topic",
        connect_timeout: float = 5.0,
        confirm_timeout: float = 30.0,
        blocked_timeout: float | None = 300.0,
        heartbeat_s: int | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        """`heartbeat_s`: AMQP heartbeats, and the connection ends once the broker has been silent
        for 1.5 of them (amqp_liveness.py); None takes the broker's value, without that check.
        `on_lost`: called when an open connection fails, e.g. to wake an idle owner."""
        self._url = url
        self._exchange = exchange
        self._exchange_type = exchange_type
        self._connect_timeout = connect_timeout
        self._confirm_timeout = confirm_timeout
        self._blocked_timeout = blocked_timeout
        self._heartbeat_s = heartbeat_s
        self._on_lost = on_lost
        self._session: _Session | None = None
        self._write_lock = asyncio.Lock()  # batches go out whole and in call order
        self._connect_lock = asyncio.Lock()

    @property
    def exchange(self) -> str:
        return self._exchange

    @property
    def is_open(self) -> bool:
        return self._session is not None and self._session.is_open

    @property
    def failure(self) -> BrokerUnavailable | None:
        """Why the current connection ended, once it has."""
        return None if self._session is None else self._session.failure

    @property
    def is_blocked(self) -> bool:
        """The broker has blocked the connection (resource alarm); publish_batch waits it out."""
        return self._session is not None and self._session.blocked

    def _parameters(self) -> pika.URLParameters:
        params = pika.URLParameters(self._url)
        # One attempt: the caller's retry policy owns back-off; pika's own retries would hide outages.
        params.connection_attempts = 1
        params.socket_timeout = self._connect_timeout
        params.stack_timeout = self._connect_timeout
        params.blocked_connection_timeout = self._blocked_timeout
        ask_heartbeat(params, self._heartbeat_s)
        params.client_properties = {
            "connection_name": f"omnihub publisher {self._exchange}",
            **(params.client_properties or {}),
        }
        return params

    async def connect(self) -> None:
        """Open a connection and a confirm channel, declare the exchange (durable). Replaces any
        previous connection, failing what was still unconfirmed on it. One attempt, no retries."""
        async with self._connect_lock:
            await self._drop(wait=False)  # a wedged old connection must not delay the new one
            self._session = await self._open()
        log.info("amqp publisher connected", extra={"exchange": self._exchange})

    async def _open(self) -> _Session:
        try:
            params = self._parameters()
        except (ValueError, TypeError) as exc:
            raise BrokerUnavailable(f"bad broker URL: {exc}") from exc
        try:
            session = _Session(params, self._exchange, asyncio.get_running_loop(), on_lost=self._on_lost)
        except AMQPError as exc:
            raise BrokerUnavailable(f"cannot connect to the broker: {exc!r}") from exc
        try:
            async with asyncio.timeout(self._connect_timeout):
                await session.open(self._exchange_type)
        except TimeoutError:
            session.fail(BrokerUnavailable(f"broker did not answer within {self._connect_timeout:g}s"))
            session.close_connection()
            raise session.failure from None  # type: ignore[misc]
        except BrokerUnavailable:
            session.close_connection()
            raise
        except AMQPError as exc:
            session.fail(BrokerUnavailable(f"cannot set up the channel: {exc!r}"))
            session.close_connection()
            raise session.failure from exc  # type: ignore[misc]
        return session

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> PublishOutcome:
        """Publish all messages and return once the broker has confirmed every one of them.

        Raises BrokerUnavailable on a nack, a missing confirm or a lost connection; then none of the
        batch may be taken as delivered (some may have been: consumers dedupe on message_id)."""
        if not messages:
            return PublishOutcome()
        session = self._session
        if session is None:
            raise BrokerUnavailable("not connected to the broker")
        batch = _Batch(messages, session.loop.create_future())
        try:
            async with self._write_lock:
                if session is not self._session:  # reconnected while this call queued for the lock
                    raise BrokerUnavailable("broker connection replaced before the batch was written")
                session.check()
                await session.write(batch)
            await session.wait_confirmed(batch, self._confirm_timeout)
        except BaseException:
            _abandon(batch.future)
            raise
        if batch.returned:
            log.warning(
                "broker returned %d of %d messages as unroutable (%s)",
                len(batch.returned),
                len(messages),
                ", ".join(sorted(batch.reply_texts)),
                extra={
                    "exchange": self._exchange,
                    "returned": len(batch.returned),
                    "sample": batch.returned[:5],
                },
            )
        return PublishOutcome(batch.returned)

    async def close(self) -> None:
        """Close the connection. Batches still unconfirmed fail with BrokerUnavailable."""
        async with self._connect_lock:
            await self._drop(wait=True)

    async def _drop(self, wait: bool) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        session.fail(BrokerUnavailable("publisher closed"))
        session.close_connection()
        if not wait:
            return
        try:
            async with asyncio.timeout(self._connect_timeout):
                await asyncio.shield(session.closed)
        except TimeoutError:
            log.warning("amqp connection did not close in time", extra={"exchange": self._exchange})
