"""The publisher's connection and its one confirm channel, on pika's asyncio adapter: opening them
one awaited step at a time (connection, channel, exchange, confirm mode), the callbacks through
which pika reports a failure or a close, failing everything unsettled when either goes, the
broker's connection.blocked / unblocked flow control, and a silent broker (amqp_liveness.py).

Kept apart from the publisher (amqp.py), which decides when to connect and hands out batches, and
from the batch traffic on the channel (amqp_writes.py, mixed into _Session), so that the set-up
and tear-down read as one piece.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

import pika
from pika.adapters.asyncio_connection import AsyncioConnection

from hub.broker.amqp_liveness import SilenceWatch, close_connection, end_silent
from hub.broker.amqp_writes import _BatchWrites
from hub.broker.confirms import BrokerUnavailable, ConfirmTracker, _Batch

# The publisher's one logger, shared by its modules.
log = logging.getLogger("hub.broker.amqp")


class _Session(_BatchWrites):
    """One connection and its one confirm channel. Callbacks of a connection that has since been
    replaced touch only their own session, never the publisher's current one."""

    def __init__(self, params: pika.URLParameters, exchange: str, loop: asyncio.AbstractEventLoop, *,
                 on_lost: Callable[[], None] | None = None) -> None:
        self.exchange = exchange
        self.loop = loop
        self.heartbeat_s = params.heartbeat if isinstance(params.heartbeat, int) else None
        self.on_lost = on_lost  # told once when an open session fails, so a waiting owner wakes up
        self.opened = False
        self.watch: SilenceWatch | None = None
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
        self.opened = True
        if self.heartbeat_s:
            self.watch = SilenceWatch(self.conn, self.heartbeat_s, self.loop, self._on_silent)

    def _on_silent(self, reason: str) -> None:
        self.fail(BrokerUnavailable(reason))
        end_silent(self.conn, reason)

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
            if self.watch is not None:
                self.watch.stop()
            unconfirmed = self.tracker.fail_all(exc)
            # The owner's supervised loop logs the outage once; this adds what only the session
            # knows, the messages left unconfirmed (they are published again).
            level = logging.INFO if unconfirmed else logging.DEBUG
            extra = self._log_extra(unconfirmed=unconfirmed)
            log.log(level, "amqp publisher connection ended: %s", exc, extra=extra)
            if self.opened and self.on_lost is not None:
                self.on_lost()
        for batch in self.batches:  # batches still being written own no outstanding tag yet
            batch.fail(exc)
        if self.step is not None and not self.step.done():
            self.step.set_exception(exc)
        self.unblocked.set()  # wake writers waiting on a block; they will find the failure

    def close_connection(self) -> None:
        close_connection(self.conn)

    # --- broker notifications: flow control ---------------------------------------------------

    def _on_blocked(self, conn: Any, frame: Any) -> None:
        self.blocked = True
        self.unblocked.clear()
        log.warning("broker blocked the connection: %s", frame.method.reason, extra=self._log_extra())

    def _on_unblocked(self, conn: Any, frame: Any) -> None:
        self.blocked = False
        self.unblocked_at = self.loop.time()
        self.unblocked.set()
        log.info("broker unblocked the connection", extra=self._log_extra())


def _resolve(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _resolver(fut: asyncio.Future[Any]) -> Any:
    return lambda result: _resolve(fut, result)
