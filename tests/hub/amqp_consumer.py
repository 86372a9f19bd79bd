"""Reading what the hub published, with a plain pika client of the test's own."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pika


class BoundQueue:
    """A durable queue of this run bound to the events exchange, read with BlockingConnection."""

    def __init__(self, url: str, exchange: str, binding: str, prefix: str) -> None:
        self.url, self.exchange, self.binding = url, exchange, binding
        self.name = f"{prefix}.q.{uuid.uuid4().hex[:8]}"

    def _channel(self):
        conn = pika.BlockingConnection(pika.URLParameters(self.url))
        return conn, conn.channel()

    def declare(self) -> None:
        conn, ch = self._channel()
        try:
            ch.exchange_declare(self.exchange, "topic", durable=True)
            ch.queue_declare(self.name, durable=True)
            ch.queue_bind(self.name, self.exchange, self.binding)
        finally:
            conn.close()

    def delete(self, *, exchange_too: bool = True) -> None:
        conn, ch = self._channel()
        try:
            ch.queue_delete(self.name)
            if exchange_too:
                ch.exchange_delete(self.exchange)
        finally:
            conn.close()

    def drain(self, count: int, timeout: float) -> list[tuple[pika.BasicProperties, dict, str]]:
        conn, ch = self._channel()
        got = []
        deadline = time.monotonic() + timeout
        try:
            while len(got) < count and time.monotonic() < deadline:
                method, props, body = ch.basic_get(self.name, auto_ack=True)
                if method is None:
                    time.sleep(0.05)
                    continue
                got.append((props, json.loads(body), method.routing_key))
        finally:
            conn.close()
        return got

    async def adrain(self, count: int, timeout: float = 20.0):
        return await asyncio.to_thread(self.drain, count, timeout)
