"""Consuming one queue from the event loop on pika's asyncio adapter.

`ConsumerSession` opens a connection and a channel with a prefetch window and hands deliveries
out one `await get()` at a time; the caller acks each after its work has committed. A lost
connection ends the session (`get` raises BrokerUnavailable) and the caller opens a new one:
deliveries not acked are redelivered by the broker, so work must be idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import pika
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.exceptions import AMQPError

from hub.broker.amqp_liveness import SilenceWatch, ask_heartbeat, close_connection, end_silent
from hub.broker.confirms import BrokerUnavailable

log = logging.getLogger("omnihub.amqp.consumer")


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_tag: int
    exchange: str
    routing_key: str
    redelivered: bool
    properties: pika.BasicProperties
    body: bytes


class ConsumerSession:
    def __init__(self, url: str, queue: str, *, prefetch: int, name: str, connect_timeout: float = 5.0,
                 heartbeat_s: int | None = None) -> None:
        """`heartbeat_s` as for ConfirmPublisher: a broker silent for 1.5 of them ends the session."""
        self._url, self._queue, self._prefetch, self._name = url, queue, prefetch, name
        self._connect_timeout = connect_timeout
        self._heartbeat_s = heartbeat_s
        self._watch: SilenceWatch | None = None
        self._deliveries: asyncio.Queue[Delivery | None] = asyncio.Queue()
        self._conn: Any = None
        self._channel: Any = None
        self._failure: BrokerUnavailable | None = None
        self._closed: asyncio.Future[None] | None = None
        self._failed = asyncio.Event()

    @property
    def is_open(self) -> bool:
        return self._failure is None and self._channel is not None and self._channel.is_open

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        opened: asyncio.Future[Any] = loop.create_future()
        params = pika.URLParameters(self._url)
        params.connection_attempts = 1
        params.socket_timeout = params.stack_timeout = self._connect_timeout
        params.client_properties = {"connection_name": self._name}
        ask_heartbeat(params, self._heartbeat_s)

        def fail(text: str) -> None:
            if self._failure is None:
                self._failure = BrokerUnavailable(text)
            if self._watch is not None:
                self._watch.stop()
            self._failed.set()
            if not opened.done():
                opened.set_exception(self._failure)
            self._deliveries.put_nowait(None)  # wakes a waiting get()

        def on_closed(_conn: Any, exc: BaseException) -> None:
            fail(f"broker connection closed: {exc!r}")
            if self._closed is not None and not self._closed.done():
                self._closed.set_result(None)

        try:
            self._conn = AsyncioConnection(
                params, on_open_callback=lambda c: opened.set_result(c) if not opened.done() else None,
                on_open_error_callback=lambda _c, exc: (fail(f"cannot connect to the broker: {exc!r}"),
                                                        on_closed(_c, exc)),
                on_close_callback=on_closed, custom_ioloop=loop)
        except AMQPError as exc:
            raise BrokerUnavailable(f"cannot connect to the broker: {exc!r}") from exc
        try:
            async with asyncio.timeout(self._connect_timeout):
                await opened
                self._channel = await self._step(lambda cb: self._conn.channel(on_open_callback=cb))
                self._channel.add_on_close_callback(lambda _ch, exc: (fail(f"channel closed: {exc!r}"),
                                                                      self._close_connection()))
                await self._step(lambda cb: self._channel.basic_qos(prefetch_count=self._prefetch, callback=cb))
                await self._step(lambda cb: self._channel.basic_consume(
                    self._queue, self._on_message, callback=cb))
        except TimeoutError:
            fail(f"broker did not answer within {self._connect_timeout:g}s")
            self._close_connection()
            raise self._failure from None  # type: ignore[misc]
        except BrokerUnavailable:
            self._close_connection()
            raise
        if self._heartbeat_s:
            self._watch = SilenceWatch(self._conn, self._heartbeat_s, loop,
                                       lambda reason: (fail(reason), end_silent(self._conn, reason)))
        log.info("consuming", extra={"queue": self._queue, "prefetch": self._prefetch})

    async def _step(self, start: Any) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        start(lambda result: fut.set_result(result) if not fut.done() else None)
        waiter = asyncio.ensure_future(self._failed.wait())
        try:
            done, _ = await asyncio.wait({fut, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if fut not in done:
            raise self._failure or BrokerUnavailable("broker session ended")
        return fut.result()

    def _on_message(self, _channel: Any, method: Any, props: pika.BasicProperties, body: bytes) -> None:
        self._deliveries.put_nowait(Delivery(method.delivery_tag, method.exchange, method.routing_key,
                                             method.redelivered, props, body))

    async def get(self) -> Delivery:
        if self._failure is not None:
            raise self._failure
        item = await self._deliveries.get()
        if item is None or self._failure is not None:
            raise self._failure or BrokerUnavailable("broker session ended")
        return item

    def ack(self, delivery: Delivery) -> None:
        if not self.is_open:
            raise self._failure or BrokerUnavailable("channel closed before the ack")
        self._channel.basic_ack(delivery.delivery_tag)

    def _close_connection(self) -> None:
        if self._conn is not None:
            close_connection(self._conn)

    async def close(self) -> None:
        if self._failure is None:
            self._failure = BrokerUnavailable("consumer closed")
        self._close_connection()
        if self._closed is not None:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await asyncio.shield(self._closed)
            except TimeoutError:
                log.warning("amqp consumer connection did not close in time", extra={"queue": self._queue})
