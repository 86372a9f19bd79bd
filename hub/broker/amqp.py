"""Confirmed publishing to RabbitMQ from the event loop (DESIGN section 5).

pika's asyncio adapter is callback based; this module turns it into one awaitable call,
`ConfirmPublisher.publish_batch`, that returns only when the broker has confirmed every message
of the batch. The outbox relay marks rows published after that and, on `BrokerUnavailable`,
republishes the whole batch: delivery is at-least-once and consumers dedupe on `message_id`.

Ordering: batches are written to the channel in call order and a batch is never interleaved
with another, so events keep their outbox order on the wire even with several batches awaiting
confirms at once. Nothing here blocks the loop; reconnect and back-off belong to the caller
(connect() makes one attempt, so the relay's tenacity policy decides how often to retry).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Sequence
from typing import Any

import pika
from pika import spec
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.exceptions import AMQPChannelError, AMQPConnectionError, AMQPError

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

# The publisher's public names, some defined in amqp_confirms and re-exported here.
__all__ = ["APP_ID", "CLOUDEVENTS_JSON", "BrokerUnavailable", "ConfirmPublisher", "ConfirmTracker",
           "InvalidMessage", "OutgoingMessage", "PublishOutcome"]

APP_ID = "omnihub"
PERSISTENT = 2
# Messages written between two returns to the loop: lets the socket drain and acks arrive while a
# large batch is being written, without paying a loop iteration per message.
_WRITE_CHUNK = 256



class _Session:
    """One connection and its one confirm channel. Callbacks of a connection that has since been
    replaced touch only their own session, never the publisher's current one."""

    def __init__(self, params: pika.URLParameters, exchange: str, loop: asyncio.AbstractEventLoop) -> None:
        self.exchange = exchange
        self.loop = loop
        self.tracker = ConfirmTracker()
        self.batches: collections.deque[_Batch] = collections.deque()  # unsettled, in write order
        self.failure: BrokerUnavailable | None = None
        self.blocked = False
        self.unblocked = asyncio.Event()
        self.unblocked.set()
        self.unblocked_at = 0.0
        self.closed: asyncio.Future[None] = loop.create_future()
        # The set-up step in progress; the first one, "connection open", starts right here.
        self.step: asyncio.Future[Any] | None = loop.create_future()
        self.channel: Any = None
        self.conn = AsyncioConnection(
            params,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed,
            custom_ioloop=loop,
        )
        # Registered before the open: RabbitMQ sends connection.blocked right after open-ok when an
        # alarm is already on, possibly in the same read.
        self.conn.add_on_connection_blocked_callback(self._on_blocked)
        self.conn.add_on_connection_unblocked_callback(self._on_unblocked)

    @property
    def is_open(self) -> bool:
        return (
            self.failure is None
            and self.conn.is_open
            and self.channel is not None
            and self.channel.is_open
        )

    def _log_extra(self, **more: Any) -> dict[str, Any]:
        return {"exchange": self.exchange, **more}

    # --- set-up, one step at a time; a failure at any step lands in self.step -----------------

    async def run_step(self, start: Any) -> Any:
        self.step = self.loop.create_future()
        return await self._await_step(start)

    async def _await_step(self, start: Any) -> Any:
        step = self.step
        assert step is not None
        try:
            start(step)
            return await step
        finally:
            self.step = None

    async def open(self, exchange_type: str) -> None:
        await self._await_step(lambda fut: None)  # resolved by the connection callbacks
        self.channel = await self.run_step(lambda fut: self.conn.channel(on_open_callback=_resolver(fut)))
        self.channel.add_on_close_callback(self._on_channel_closed)
        self.channel.add_on_return_callback(self._on_return)
        await self.run_step(
            lambda fut: self.channel.exchange_declare(
                self.exchange, exchange_type=exchange_type, durable=True, callback=_resolver(fut)
            )
        )
        await self.run_step(
            lambda fut: self.channel.confirm_delivery(self._on_confirm, callback=_resolver(fut))
        )

    def _on_connection_open(self, conn: Any) -> None:
        if self.step is not None and not self.step.done():
            self.step.set_result(conn)

    def _on_connection_open_error(self, conn: Any, exc: BaseException | str) -> None:
        self.fail(BrokerUnavailable(f"cannot connect to the broker: {exc!r}"))
        _resolve(self.closed, None)

    def _on_connection_closed(self, conn: Any, exc: BaseException) -> None:
        self.fail(BrokerUnavailable(f"broker connection closed: {exc!r}"))
        _resolve(self.closed, None)

    def _on_channel_closed(self, channel: Any, exc: BaseException) -> None:
        self.fail(BrokerUnavailable(f"broker channel closed: {exc!r}"))
        # One channel per publisher: without it the connection is useless, and closing it lets
        # close() and the next connect() find a clean state.
        self.close_connection()

    def fail(self, exc: BrokerUnavailable) -> None:
        if self.failure is None:
            self.failure = exc
            unconfirmed = self.tracker.fail_all(exc)
            level = logging.WARNING if unconfirmed else logging.INFO
            extra = self._log_extra(unconfirmed=unconfirmed)
            log.log(level, "amqp publisher connection ended: %s", exc, extra=extra)
        for batch in self.batches:  # batches still being written own no outstanding tag yet
            batch.fail(exc)
        if self.step is not None and not self.step.done():
            self.step.set_exception(exc)
        self.unblocked.set()  # wake writers waiting on a block; they will find the failure

    def close_connection(self) -> None:
        if not (self.conn.is_closing or self.conn.is_closed):
            try:
                self.conn.close()
            except AMQPError:  # already on its way down
                pass

    # --- broker notifications ------------------------------------------------------------------

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if isinstance(method, spec.Basic.Ack):
            self.tracker.ack(method.delivery_tag, method.multiple)
        else:
            for tag, _batch in self.tracker.nack(method.delivery_tag, method.multiple):
                log.warning("broker nacked a message", extra=self._log_extra(delivery_tag=tag))
        while self.batches and self.batches[0].future.done():
            self.batches.popleft()

    def _on_return(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        message_id = properties.message_id
        # One line per message at INFO; publish_batch sums them up at WARNING, since an exchange
        # with no queue bound returns every message of every batch.
        log.info(
            "broker returned an unroutable message: %s %s",
            method.reply_code,
            method.reply_text,
            extra=self._log_extra(
                routing_key=method.routing_key,
                message_id=message_id,
                reply_code=method.reply_code,
                reply_text=method.reply_text,
            ),
        )
        # A return precedes its message's ack, so the owning batch is still unsettled.
        for batch in self.batches:
            if not batch.future.done() and batch.contains(message_id):
                batch.returned.append(message_id)
                batch.reply_texts.add(f"{method.reply_code} {method.reply_text}")
                return
        log.warning(
            "returned message matches no batch in flight", extra=self._log_extra(message_id=message_id)
        )

    def _on_blocked(self, conn: Any, frame: Any) -> None:
        self.blocked = True
        self.unblocked.clear()
        log.warning("broker blocked the connection: %s", frame.method.reason, extra=self._log_extra())

    def _on_unblocked(self, conn: Any, frame: Any) -> None:
        self.blocked = False
        self.unblocked_at = self.loop.time()
        self.unblocked.set()
        log.info("broker unblocked the connection", extra=self._log_extra())

    # --- publishing ----------------------------------------------------------------------------

    def check(self) -> None:
        if self.failure is not None:
            raise self.failure
        if not self.is_open:
            raise BrokerUnavailable("not connected to the broker")

    async def write(self, batch: _Batch) -> None:
        """Write every message of the batch; the caller holds the write lock."""
        self.batches.append(batch)
        batch.first_tag = self.tracker.next_tag
        publish = self.channel.basic_publish
        exchange = self.exchange
        now = int(time.time())
        messages = batch.messages
        start = written = 0
        try:
            for start in range(0, len(messages), _WRITE_CHUNK):
                if start:
                    await asyncio.sleep(0)
                while self.blocked:  # the broker reads nothing while blocked; stop adding to the buffer
                    await self.unblocked.wait()
                self.check()
                written = 0
                try:
                    for m in messages[start : start + _WRITE_CHUNK]:
                        props = spec.BasicProperties(
                            content_type=m.content_type,
                            delivery_mode=PERSISTENT,
                            message_id=m.message_id,
                            timestamp=now if m.timestamp is None else m.timestamp,
                            app_id=APP_ID,
                            headers=None if m.headers is None else dict(m.headers),
                        )
                        publish(exchange, m.routing_key, m.body, props, True)
                        written += 1
                finally:
                    # Whatever went out took a tag, even if a later message raised: the count
                    # must match the broker's or every later confirm lands on the wrong batch.
                    self.tracker.add_many(batch, written)
        except (AMQPConnectionError, AMQPChannelError) as exc:
            self.fail(BrokerUnavailable(f"publish failed: {exc!r}"))
            self.close_connection()
            raise self.failure from exc  # type: ignore[misc]
        except (AMQPError, TypeError, ValueError) as exc:
            # pika refused to encode this message; nothing of it went out and the channel is fine.
            # Retrying would fail the same way, so this is not BrokerUnavailable.
            bad = messages[start + written]
            text = f"message {bad.message_id!r} cannot be published: {exc!r}"
            raise InvalidMessage(text, bad.message_id) from exc
        batch.sealed = True
        batch.settle_if_done()

    async def wait_confirmed(self, batch: _Batch, timeout: float) -> None:
        """Wait for the batch's confirms. The clock does not run while the broker holds the connection
        blocked (an alarm is not a lost confirm); ConnectionParameters.blocked_connection_timeout
        bounds that wait instead."""
        fut = batch.future
        start = self.loop.time()
        while not fut.done():
            deadline = max(start, self.unblocked_at) + timeout
            remaining = deadline - self.loop.time()
            if self.blocked:
                remaining = timeout
            elif remaining <= 0:
                exc = BrokerUnavailable(f"no broker confirm within {timeout:g}s")
                # Confirms may still come for a channel this slow; start over on a fresh one rather
                # than keep tags that may never settle.
                self.fail(exc)
                self.close_connection()
                break
            await asyncio.wait((fut,), timeout=remaining)
        fut.result()  # raises the batch's BrokerUnavailable


def _abandon(fut: asyncio.Future[Any]) -> None:
    """Late confirms of an abandoned batch settle nothing, and its failure counts as seen."""
    if fut.done():
        if not fut.cancelled():
            fut.exception()
    else:
        fut.cancel()


def _resolve(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _resolver(fut: asyncio.Future[Any]) -> Any:
    return lambda result: _resolve(fut, result)


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
    ) -> None:
        self._url = url
        self._exchange = exchange
        self._exchange_type = exchange_type
        self._connect_timeout = connect_timeout
        self._confirm_timeout = confirm_timeout
        self._blocked_timeout = blocked_timeout
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
            session = _Session(params, self._exchange, asyncio.get_running_loop())
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
