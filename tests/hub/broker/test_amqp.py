"""hub.broker.amqp: delivery-tag bookkeeping on its own, then ConfirmPublisher against the real broker.

Broker-side set-up and reads use pika.BlockingConnection in a thread. Every exchange and queue is
named after run_prefix and deleted at the end of its test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pika
import pytest

from hub.broker.amqp import (
    CLOUDEVENTS_JSON,
    BrokerUnavailable,
    ConfirmPublisher,
    ConfirmTracker,
    InvalidMessage,
    OutgoingMessage,
    _Batch,
)
from tests.services import queue_depth

# --- delivery tags, no broker --------------------------------------------------------------------


def _batch(n: int) -> _Batch:
    messages = [OutgoingMessage("k", b"", f"m{i}") for i in range(n)]
    return _Batch(messages, asyncio.get_running_loop().create_future())


def _write(tracker: ConfirmTracker, batch: _Batch) -> None:
    batch.first_tag = tracker.next_tag
    tracker.add_many(batch, len(batch.messages))
    batch.sealed = True


async def test_multiple_ack_settles_every_batch_up_to_the_tag() -> None:
    tracker = ConfirmTracker()
    a, b = _batch(3), _batch(2)  # tags 1-3 and 4-5
    _write(tracker, a)
    _write(tracker, b)
    tracker.ack(4, multiple=True)
    assert a.future.done() and not b.future.done()
    tracker.ack(5, multiple=True)
    assert b.future.done() and len(tracker) == 0


async def test_single_acks_out_of_order_then_multiple() -> None:
    tracker = ConfirmTracker()
    a, b = _batch(3), _batch(3)  # tags 1-3 and 4-6
    _write(tracker, a)
    _write(tracker, b)
    tracker.ack(5, multiple=False)
    tracker.ack(2, multiple=False)
    tracker.ack(2, multiple=False)  # a repeat confirms nothing more
    assert not a.future.done() and b.pending == 2
    tracker.ack(3, multiple=True)  # covers 1 and 3; 2 is already gone
    assert a.future.done() and not b.future.done()
    tracker.ack(6, multiple=False)
    tracker.ack(4, multiple=False)
    assert b.future.done() and len(tracker) == 0


async def test_nack_fails_only_the_owning_batch() -> None:
    tracker = ConfirmTracker()
    a, b = _batch(2), _batch(2)  # tags 1-2 and 3-4
    _write(tracker, a)
    _write(tracker, b)
    tracker.nack(3, multiple=False)
    with pytest.raises(BrokerUnavailable, match="m0"):  # tag 3 is b's first message
        b.future.result()
    tracker.ack(4, multiple=True)
    assert a.future.result() is None
    assert len(tracker) == 0


async def test_batch_settles_only_once_fully_written() -> None:
    tracker = ConfirmTracker()
    a = _batch(2)
    tracker.add_many(a, 1)
    tracker.ack(1, multiple=False)  # an ack arriving while the batch is still being written
    assert not a.future.done()
    tracker.add_many(a, 1)
    a.sealed = True
    tracker.ack(2, multiple=False)
    assert a.future.done()


async def test_fail_all_fails_outstanding_batches() -> None:
    tracker = ConfirmTracker()
    a = _batch(3)
    _write(tracker, a)
    assert tracker.fail_all(BrokerUnavailable("gone")) == 3
    with pytest.raises(BrokerUnavailable):
        a.future.result()


# --- against the broker --------------------------------------------------------------------------

BINDING = "interaction.received.#"


@dataclass
class Topology:
    url: str
    exchange: str
    queue: str


def _admin(url: str, *actions: tuple[str, dict]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        for name, kwargs in actions:
            getattr(ch, name)(**kwargs)
    finally:
        conn.close()


def _drain(url: str, queue: str, expected: int, idle: float = 3.0) -> list[tuple[object, bytes]]:
    """Read (properties, body) from `queue` until `expected` arrived or nothing came for `idle` s."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    got: list[tuple[object, bytes]] = []
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=1000)
        for method, props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=idle):
            if method is None:
                break
            got.append((props, body))
            if len(got) >= expected:
                break
        ch.cancel()
    finally:
        conn.close()
    return got


@pytest.fixture
async def topology(amqp_url: str, run_prefix: str) -> AsyncIterator[Topology]:
    unique = uuid.uuid4().hex[:6]
    topo = Topology(amqp_url, f"{run_prefix}.events.{unique}", f"{run_prefix}.received.{unique}")
    await asyncio.to_thread(
        _admin,
        amqp_url,
        ("exchange_declare", {"exchange": topo.exchange, "exchange_type": "topic", "durable": True}),
        ("queue_declare", {"queue": topo.queue, "durable": True}),
        ("queue_bind", {"queue": topo.queue, "exchange": topo.exchange, "routing_key": BINDING}),
    )
    yield topo
    await asyncio.to_thread(
        _admin,
        amqp_url,
        ("queue_delete", {"queue": topo.queue}),
        ("exchange_delete", {"exchange": topo.exchange}),
    )


@pytest.fixture
async def publisher(topology: Topology) -> AsyncIterator[ConfirmPublisher]:
    pub = ConfirmPublisher(topology.url, topology.exchange, confirm_timeout=10)
    await pub.connect()
    yield pub
    await pub.close()


def _messages(n: int, key: str = "interaction.received.sms", tag: str = "") -> list[OutgoingMessage]:
    return [
        OutgoingMessage(key, f'{{"n": {i}}}'.encode(), f"{tag}{uuid.uuid4()}", timestamp=1700000000)
        for i in range(n)
    ]


@pytest.mark.rabbitmq
async def test_batch_arrives_persistent_with_ids(topology: Topology, publisher: ConfirmPublisher) -> None:
    messages = _messages(2000)
    outcome = await publisher.publish_batch(messages)
    assert outcome.returned == []

    got = await asyncio.to_thread(_drain, topology.url, topology.queue, len(messages))
    assert len(got) == len(messages)
    assert [p.message_id for p, _ in got] == [m.message_id for m in messages]  # one channel keeps order
    assert [b for _, b in got] == [m.body for m in messages]
    props = got[0][0]
    assert {p.delivery_mode for p, _ in got} == {2}
    assert {p.content_type for p, _ in got} == {CLOUDEVENTS_JSON}
    assert props.app_id == "omnihub" and props.timestamp == 1700000000


@pytest.mark.rabbitmq
async def test_unencodable_message_is_named_and_the_channel_stays_usable(
    topology: Topology, publisher: ConfirmPublisher
) -> None:
    good = _messages(3)
    bad = OutgoingMessage("interaction.received.sms", b"{}", "x" * 300)  # over AMQP's 255-byte limit
    with pytest.raises(InvalidMessage) as caught:
        await publisher.publish_batch([good[0], good[1], bad, good[2]])
    assert caught.value.message_id == bad.message_id
    assert publisher.is_open

    # Tags stayed in step with the broker: a later batch settles on its own confirms.
    after = _messages(300)
    assert (await publisher.publish_batch(after)).returned == []
    got = await asyncio.to_thread(_drain, topology.url, topology.queue, 2 + 300)
    assert [p.message_id for p, _ in got] == [m.message_id for m in good[:2] + after]


@pytest.mark.rabbitmq
async def test_unroutable_message_is_returned_not_raised(
    topology: Topology, publisher: ConfirmPublisher
) -> None:
    routed = _messages(3)
    lost = _messages(2, key="profile.created")  # nothing is bound to it
    outcome = await publisher.publish_batch([routed[0], lost[0], routed[1], lost[1], routed[2]])
    assert sorted(outcome.returned) == sorted(m.message_id for m in lost)
    assert publisher.is_open

    got = await asyncio.to_thread(_drain, topology.url, topology.queue, 3)
    assert [p.message_id for p, _ in got] == [m.message_id for m in routed]


@pytest.mark.rabbitmq
async def test_concurrent_batches_resolve_and_keep_call_order(
    topology: Topology, publisher: ConfirmPublisher
) -> None:
    batches = [_messages(300, tag=f"b{k}-") for k in range(6)]
    batches[2] = batches[2][:150] + _messages(10, key="task.created", tag="b2-") + batches[2][150:]

    outcomes = await asyncio.gather(*(publisher.publish_batch(b) for b in batches))

    assert [len(o.returned) for o in outcomes] == [0, 0, 10, 0, 0, 0]
    assert set(outcomes[2].returned) == {m.message_id for m in batches[2] if m.routing_key == "task.created"}
    expected = [m.message_id for b in batches for m in b if m.routing_key != "task.created"]
    got = await asyncio.to_thread(_drain, topology.url, topology.queue, len(expected))
    assert [p.message_id for p, _ in got] == expected  # batches never interleave


async def test_connect_to_closed_port_fails_fast() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again on leaving the block: nothing listens there
    pub = ConfirmPublisher(f"amqp://guest:guest@127.0.0.1:{port}/%2F", "unused", connect_timeout=5)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        await pub.connect()
    assert time.monotonic() - started < 2
    assert not pub.is_open
    with pytest.raises(BrokerUnavailable):
        await pub.publish_batch(_messages(1))


async def test_connect_timeout_when_nothing_answers() -> None:
    silent: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda r, w: silent.append(w), "127.0.0.1", 0)  # never speaks AMQP
    port = server.sockets[0].getsockname()[1]
    pub = ConfirmPublisher(f"amqp://guest:guest@127.0.0.1:{port}/%2F", "unused", connect_timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(BrokerUnavailable):
            await pub.connect()
        assert time.monotonic() - started < 3
    finally:
        for writer in silent:
            writer.close()
        server.close()
        await server.wait_closed()


# --- a TCP proxy we can cut, to lose the broker connection from outside ------------------------


class Proxy:
    """Forwards 127.0.0.1:<port> to the broker. cut() drops every live connection; hold() stops
    passing broker->client bytes (confirms) until cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.client_writers: set[asyncio.StreamWriter] = set()
        self.held = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    def inject(self, method: object) -> None:
        """Send an AMQP method frame to the client as if the broker had (channel 0)."""
        frame = pika.frame.Method(0, method).marshal()
        for writer in self.client_writers:
            writer.write(frame)

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        b_reader, b_writer = await asyncio.open_connection(*self.target)
        self.writers |= {c_writer, b_writer}
        self.client_writers.add(c_writer)
        for task in (
            asyncio.create_task(self._pipe(c_reader, b_writer, holdable=False)),
            asyncio.create_task(self._pipe(b_reader, c_writer, holdable=True)),
        ):
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, holdable: bool) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if holdable and self.held.is_set():
                    continue  # swallowed: the client never sees it
                writer.write(data)
                await writer.drain()
        writer.close()

    def hold(self) -> None:
        self.held.set()

    async def cut(self) -> None:
        self.held.clear()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        self.client_writers.clear()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def stop(self) -> None:
        await self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@pytest.fixture
async def proxy(amqp_url: str) -> AsyncIterator[Proxy]:
    target = urlsplit(amqp_url)
    p = Proxy(target.hostname or "127.0.0.1", target.port or 5672)
    await p.start()
    yield p
    await p.stop()


async def _until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.mark.rabbitmq
async def test_lost_connection_raises_then_reconnect_works(topology: Topology, proxy: Proxy) -> None:
    pub = ConfirmPublisher(_via(topology.url, proxy.port), topology.exchange, confirm_timeout=10)
    await pub.connect()
    try:
        assert (await pub.publish_batch(_messages(5))).returned == []

        # Connection lost while a batch awaits its confirms.
        proxy.hold()
        in_flight = asyncio.create_task(pub.publish_batch(_messages(50)))
        await asyncio.sleep(0.2)
        assert not in_flight.done()
        await proxy.cut()
        with pytest.raises(BrokerUnavailable):
            await asyncio.wait_for(in_flight, 5)
        await _until(lambda: not pub.is_open)

        # Publishing on the dead connection.
        with pytest.raises(BrokerUnavailable):
            await pub.publish_batch(_messages(5))

        await pub.connect()
        assert pub.is_open
        after = _messages(20)
        assert (await pub.publish_batch(after)).returned == []
    finally:
        await pub.close()

    got = await asyncio.to_thread(_drain, topology.url, topology.queue, 5 + 50 + 20)
    ids = [p.message_id for p, _ in got]
    assert ids[-20:] == [m.message_id for m in after]


@pytest.mark.rabbitmq
async def test_confirm_timeout_raises_and_drops_the_connection(topology: Topology, proxy: Proxy) -> None:
    pub = ConfirmPublisher(_via(topology.url, proxy.port), topology.exchange, confirm_timeout=0.5)
    await pub.connect()
    try:
        proxy.hold()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="confirm"):
            await pub.publish_batch(_messages(10))
        assert time.monotonic() - started < 3
        assert not pub.is_open
    finally:
        await proxy.cut()
        await pub.close()


@pytest.mark.rabbitmq
async def test_blocked_connection_holds_writes_until_unblocked(topology: Topology, proxy: Proxy) -> None:
    pub = ConfirmPublisher(_via(topology.url, proxy.port), topology.exchange, confirm_timeout=0.3)
    await pub.connect()
    try:
        await pub.publish_batch(_messages(5))
        proxy.inject(pika.spec.Connection.Blocked(reason="low on memory (test)"))
        await _until(lambda: pub.is_blocked)

        task = asyncio.create_task(pub.publish_batch(_messages(10)))
        await asyncio.sleep(0.6)  # twice the confirm timeout: a block is waited out, not timed out
        assert not task.done()
        assert await asyncio.to_thread(queue_depth, topology.url, topology.queue) == 5

        proxy.inject(pika.spec.Connection.Unblocked())
        assert (await asyncio.wait_for(task, 5)).returned == []
        assert not pub.is_blocked
        assert await asyncio.to_thread(queue_depth, topology.url, topology.queue) == 15
    finally:
        await pub.close()


@pytest.mark.rabbitmq
async def test_confirm_clock_stops_while_blocked(topology: Topology, proxy: Proxy) -> None:
    pub = ConfirmPublisher(_via(topology.url, proxy.port), topology.exchange, confirm_timeout=0.3)
    await pub.connect()
    try:
        proxy.hold()  # the broker's confirms never reach the publisher
        task = asyncio.create_task(pub.publish_batch(_messages(10)))
        await asyncio.sleep(0.1)
        proxy.inject(pika.spec.Connection.Blocked(reason="disk (test)"))
        await asyncio.sleep(0.6)
        assert not task.done()
        proxy.inject(pika.spec.Connection.Unblocked())
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="confirm"):
            await asyncio.wait_for(task, 5)
        assert 0.2 < time.monotonic() - started < 2  # the clock restarted at the unblock
    finally:
        await proxy.cut()
        await pub.close()


@pytest.mark.rabbitmq
async def test_channel_error_fails_batch_and_closes(amqp_url: str, run_prefix: str) -> None:
    exchange = f"{run_prefix}.gone.{uuid.uuid4().hex[:6]}"
    pub = ConfirmPublisher(amqp_url, exchange, confirm_timeout=5)
    await pub.connect()
    try:
        # Deleting the exchange under the publisher makes the broker close the channel (404).
        await asyncio.to_thread(_admin, amqp_url, ("exchange_delete", {"exchange": exchange}))
        with pytest.raises(BrokerUnavailable):
            await pub.publish_batch(_messages(10))
        await _until(lambda: not pub.is_open)
        await pub.connect()  # declares the exchange again
        assert (await pub.publish_batch(_messages(3))).returned  # nothing bound: all returned
    finally:
        await pub.close()
        await asyncio.to_thread(_admin, amqp_url, ("exchange_delete", {"exchange": exchange}))


def test_messages_are_frozen() -> None:
    m = OutgoingMessage("k", b"x", "id")
    with pytest.raises(AttributeError):
        m.body = b"y"  # type: ignore[misc]
