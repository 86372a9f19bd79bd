"""The floor the outbox relay is measured against: raw pika confirm-publishing on the asyncio adapter.

`raw_pika_confirm_publish` is as little as pika needs to publish persistent messages with publisher
confirms and at most `window` unconfirmed; the relay must reach >= 0.80 of it. `__main__` also
times hub.broker.amqp.ConfirmPublisher on the same messages (batches of `window`, two batches in flight,
the way the relay pipelines them) and prints the ratio.

    python -m bench.relay_floor [--url URL] [--count 20000] [--size 1024] [--window 1000] [--rounds 3]

Both runs publish to a run-unique topic exchange with one durable queue bound, so every message is
routed and written to disk as in production; the queue and exchange are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence

import pika
from pika import spec
from pika.adapters.asyncio_connection import AsyncioConnection

if __package__ in (None, ""):  # `python bench/x.py`: the project root, not bench/, heads sys.path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from hub.broker.amqp import CLOUDEVENTS_JSON, ConfirmPublisher, OutgoingMessage  # noqa: E402

ROUTING_KEY = "interaction.received.sms"
# Client CPU per message of the last timed run, in microseconds: steadier than msg/s on a shared
# box, where the broker's fsyncs set the pace.
LAST_CPU_US = [0.0]
DEFAULT_URL = os.environ.get("OMNIHUB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


async def raw_pika_confirm_publish(
    url: str,
    exchange: str,
    bodies: list[bytes],
    window: int,
    *,
    message_ids: Sequence[str] | None = None,
    routing_key: str = ROUTING_KEY,
) -> float:
    """Publish `bodies` with confirms, at most `window` unconfirmed; return messages per second.

    With `message_ids`, each message carries the same properties ConfirmPublisher sets (message_id,
    content type, timestamp, app_id), so the comparison measures the publisher, not the encoding of
    properties DESIGN section 5 requires anyway. Without, only delivery_mode=2 is set. The timing
    starts once the channel is in confirm mode and ends at the last confirm."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    done: asyncio.Future[None] = loop.create_future()
    closed: asyncio.Future[None] = loop.create_future()
    total = len(bodies)
    state = {"sent": 0, "confirmed": 0, "upto": 0}
    singles: set[int] = set()  # tags acked one by one above `upto`
    now = int(time.time())
    channel = None

    def fail(exc: BaseException) -> None:
        for fut in (ready, done):
            if not fut.done():
                fut.set_exception(exc if isinstance(exc, BaseException) else RuntimeError(str(exc)))

    def fill() -> None:
        publish = channel.basic_publish
        sent = state["sent"]
        limit = min(total, state["confirmed"] + window)
        while sent < limit:
            if message_ids is None:
                props = spec.BasicProperties(delivery_mode=2)
            else:
                props = spec.BasicProperties(
                    content_type=CLOUDEVENTS_JSON,
                    delivery_mode=2,
                    message_id=message_ids[sent],
                    timestamp=now,
                    app_id="omnihub",
                )
            publish(exchange, routing_key, bodies[sent], props, True)
            sent += 1
        state["sent"] = sent

    def on_confirm(frame: pika.frame.Method) -> None:
        method = frame.method
        if isinstance(method, spec.Basic.Nack):
            fail(RuntimeError(f"nack for tag {method.delivery_tag}"))
            return
        tag, upto = method.delivery_tag, state["upto"]
        if method.multiple:
            below = [t for t in singles if t <= tag]
            newly = max(0, tag - upto - len(below))
            singles.difference_update(below)
            state["upto"] = max(upto, tag)
        elif tag > upto and tag not in singles:
            singles.add(tag)
            newly = 1
            while state["upto"] + 1 in singles:
                state["upto"] += 1
                singles.discard(state["upto"])
        else:
            newly = 0
        state["confirmed"] += newly
        if state["confirmed"] >= total:
            if not done.done():
                done.set_result(None)
        else:
            fill()

    def on_open(conn: AsyncioConnection) -> None:
        conn.channel(on_open_callback=on_channel)

    def on_channel(ch) -> None:
        nonlocal channel
        channel = ch
        ch.add_on_close_callback(lambda _ch, exc: fail(exc))
        ch.exchange_declare(exchange, exchange_type="topic", durable=True, callback=lambda _f: on_declared())

    def on_declared() -> None:
        channel.confirm_delivery(on_confirm, callback=lambda _f: ready.set_result(None))

    params = pika.URLParameters(url)
    conn = AsyncioConnection(
        params,
        on_open_callback=on_open,
        on_open_error_callback=lambda _c, exc: fail(exc),
        on_close_callback=lambda _c, exc: (fail(exc), closed.done() or closed.set_result(None)),
        custom_ioloop=loop,
    )
    try:
        await asyncio.wait_for(ready, 10)
        started, cpu = time.perf_counter(), time.process_time()
        fill()
        await done
        elapsed = time.perf_counter() - started
        LAST_CPU_US[0] = (time.process_time() - cpu) / total * 1e6
    finally:
        if not (conn.is_closing or conn.is_closed):
            conn.close()
        await asyncio.wait_for(asyncio.shield(closed), 10)
    return total / elapsed


async def publisher_confirm_publish(
    url: str, exchange: str, messages: list[OutgoingMessage], window: int, in_flight: int = 2
) -> float:
    """ConfirmPublisher on the same messages: batches of `window`, `in_flight` batches at once."""
    publisher = ConfirmPublisher(url, exchange)
    await publisher.connect()
    try:
        slots = asyncio.Semaphore(in_flight)
        tasks = []
        started, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(messages), window):
            await slots.acquire()
            task = asyncio.create_task(publisher.publish_batch(messages[start : start + window]))
            task.add_done_callback(lambda _t: slots.release())
            tasks.append(task)
        outcomes = await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        LAST_CPU_US[0] = (time.process_time() - cpu) / len(messages) * 1e6
    finally:
        await publisher.close()
    returned = sum(len(o.returned) for o in outcomes)
    if returned:
        raise RuntimeError(f"{returned} messages were returned; is the bench queue bound?")
    return len(messages) / elapsed


def _broker_admin(url: str, *actions: tuple[str, dict]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        for name, kwargs in actions:
            getattr(ch, name)(**kwargs)
    finally:
        conn.close()


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=1024, help="body bytes")
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    args = parser.parse_args(argv)

    run = uuid.uuid4().hex[:8]
    exchange, queue = f"bench.{run}.events", f"bench.{run}.sink"
    bodies = [os.urandom(args.size // 2).hex().encode()[: args.size] for _ in range(args.count)]
    ids = [str(uuid.uuid4()) for _ in range(args.count)]
    messages = [OutgoingMessage(ROUTING_KEY, b, i) for b, i in zip(bodies, ids, strict=True)]

    await asyncio.to_thread(
        _broker_admin,
        args.url,
        ("exchange_declare", {"exchange": exchange, "exchange_type": "topic", "durable": True}),
        ("queue_declare", {"queue": queue, "durable": True}),
        ("queue_bind", {"queue": queue, "exchange": exchange, "routing_key": "interaction.received.#"}),
    )
    purge = ("queue_purge", {"queue": queue})
    raw_min, raw_same, ours, ours_one = [], [], [], []
    cpu: dict[str, list[float]] = {"min": [], "same": [], "ours": [], "one": []}
    try:
        for _ in range(args.rounds):
            raw_min.append(await raw_pika_confirm_publish(args.url, exchange, bodies, args.window))
            cpu["min"].append(LAST_CPU_US[0])
            await asyncio.to_thread(_broker_admin, args.url, purge)
            raw_same.append(
                await raw_pika_confirm_publish(args.url, exchange, bodies, args.window, message_ids=ids)
            )
            cpu["same"].append(LAST_CPU_US[0])
            await asyncio.to_thread(_broker_admin, args.url, purge)
            ours.append(await publisher_confirm_publish(args.url, exchange, messages, args.window))
            cpu["ours"].append(LAST_CPU_US[0])
            await asyncio.to_thread(_broker_admin, args.url, purge)
            ours_one.append(await publisher_confirm_publish(args.url, exchange, messages, args.window, 1))
            cpu["one"].append(LAST_CPU_US[0])
            await asyncio.to_thread(_broker_admin, args.url, purge)
    finally:
        await asyncio.to_thread(
            _broker_admin,
            args.url,
            ("queue_delete", {"queue": queue}),
            ("exchange_delete", {"exchange": exchange}),
        )

    floor_min, floor_same, mine, mine_one = map(statistics.median, (raw_min, raw_same, ours, ours_one))
    print(f"messages: {args.count} x {args.size} B, window {args.window}, median of {args.rounds} rounds")
    us = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"raw pika floor (delivery_mode only):      {floor_min:10.0f} msg/s  {us['min']:6.1f} us CPU/msg")
    print(f"raw pika floor (same properties):         {floor_same:10.0f} msg/s  {us['same']:6.1f} us CPU/msg")
    print(f"ConfirmPublisher (2 batches in flight):   {mine:10.0f} msg/s  {us['ours']:6.1f} us CPU/msg")
    print(f"ConfirmPublisher (1 batch in flight):     {mine_one:10.0f} msg/s  {us['one']:6.1f} us CPU/msg")
    print(f"ratio vs floor with the same properties:  {mine / floor_same:10.2f}")
    print(f"ratio vs delivery_mode-only floor:        {mine / floor_min:10.2f}")


if __name__ == "__main__":
    asyncio.run(main())
