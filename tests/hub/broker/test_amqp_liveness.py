"""AMQP heartbeats and the silence watch (hub.broker.amqp_liveness) on the real broker behind a
TCP proxy that goes silent: the connection ends by itself with the reason, a healthy idle one is
left alone, and a refused connection attempt does not fill the log with pika's lines."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid

import pika
import pytest

from hub.broker.amqp import BrokerUnavailable, ConfirmPublisher, OutgoingMessage
from hub.broker.consumer import ConsumerSession
from tests.hub.conftest import eventually
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def broker():
    proxy = TcpProxy(5672)
    await proxy.start()
    yield proxy
    proxy.resume()
    await proxy.stop()


def via(proxy: TcpProxy) -> str:
    return f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"


async def _true(value) -> bool:
    return value


def _message() -> OutgoingMessage:
    return OutgoingMessage(routing_key="test.liveness", body=b"{}", message_id=uuid.uuid4().hex)


async def test_a_publisher_whose_broker_goes_silent_ends_with_the_reason_and_says_so(broker, exchange, amqp_url):
    lost: list[bool] = []
    pub = ConfirmPublisher(via(broker), exchange, heartbeat_s=1, on_lost=lambda: lost.append(True))
    await pub.connect()
    try:
        await pub.publish_batch([_message()])
        broker.silence()
        await eventually(lambda: _true(not pub.is_open), timeout=30)
        assert "silent" in str(pub.failure)
        assert lost == [True]
        with pytest.raises(BrokerUnavailable, match="silent"):
            await pub.publish_batch([_message()])
        broker.resume()
        await pub.connect()  # a fresh connection works once it speaks again
        await pub.publish_batch([_message()])
    finally:
        await pub.close()
        await asyncio.to_thread(_delete_exchange, amqp_url, exchange)


async def test_a_consumer_whose_broker_goes_silent_stops_waiting_with_the_reason(broker, amqp_url, run_prefix):
    queue = f"{run_prefix}.liveness.{uuid.uuid4().hex[:6]}"
    await asyncio.to_thread(_declare_queue, amqp_url, queue)
    session = ConsumerSession(via(broker), queue, prefetch=1, name="liveness test", heartbeat_s=1)
    await session.open()
    try:
        waiting = asyncio.create_task(session.get())  # nothing to deliver: it waits
        broker.silence()
        with pytest.raises(BrokerUnavailable, match="silent"):
            await asyncio.wait_for(waiting, 30)
    finally:
        broker.resume()
        await session.close()
        await asyncio.to_thread(_delete_queue, amqp_url, queue)


async def test_an_idle_healthy_connection_is_kept(broker, exchange, amqp_url):
    pub = ConfirmPublisher(via(broker), exchange, heartbeat_s=1)
    await pub.connect()
    try:
        await asyncio.sleep(4)  # four heartbeats with no traffic of ours: the broker's heartbeats count
        assert pub.is_open
        await pub.publish_batch([_message()])
    finally:
        await pub.close()
        await asyncio.to_thread(_delete_exchange, amqp_url, exchange)


async def test_refused_connection_attempts_leave_no_pika_error_lines(caplog):
    caplog.set_level(logging.DEBUG)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the block ends
    for _ in range(5):
        pub = ConfirmPublisher(f"amqp://guest:guest@127.0.0.1:{port}/%2F", "unused", heartbeat_s=2)
        with pytest.raises(BrokerUnavailable):
            await pub.connect()
    noisy = [r for r in caplog.records if r.name.startswith("pika") and r.levelno >= logging.WARNING]
    ours = [r for r in caplog.records if r.name.startswith(("hub", "omnihub")) and r.levelno >= logging.INFO]
    assert noisy == [] and ours == []  # the caller's loop logs the outage, once


async def test_an_attempt_abandoned_while_opening_ends_quietly(broker, caplog):
    """A broker silent during the handshake: the connect times out and the half-open connection is
    dropped. pika's close() at that point raises inside its own workflow (two ERROR lines)."""
    caplog.set_level(logging.INFO)
    broker.silence()
    for _ in range(2):
        pub = ConfirmPublisher(via(broker), "unused", connect_timeout=0.5, heartbeat_s=2)
        with pytest.raises(BrokerUnavailable):
            await pub.connect()
    await asyncio.sleep(0.5)  # pika reports that failure from a later callback
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def _admin(url: str, action) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        action(conn.channel())
    finally:
        conn.close()


def _declare_queue(url: str, queue: str) -> None:
    _admin(url, lambda ch: ch.queue_declare(queue, durable=False, auto_delete=False))


def _delete_queue(url: str, queue: str) -> None:
    _admin(url, lambda ch: ch.queue_delete(queue))


def _delete_exchange(url: str, exchange: str) -> None:
    _admin(url, lambda ch: ch.exchange_delete(exchange))
