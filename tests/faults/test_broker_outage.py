"""The broker goes away under a steady load on a real `omnihub serve`: first cut (the proxy stops,
connections drop) for 30 s, then silent (the proxy passes no byte but keeps the sockets) for 30 s.

What an operator is promised: no event is lost; every event committed before the broker returns is
in the queue within 10 s of its return, without a restart; /readyz answers 503 within 5 s of the
broker going silent (heartbeats, not the ~30 s pika took alone) and 200 once it is back; and the
log holds one failure line and one recovery line of the relay per outage, not pika's hundreds.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

import aiohttp
import pika

from tests.faults.harness import HubProcess
from tests.hub.amqp_consumer import BoundQueue
from tests.hub.payloads import sms
from tests.tcp_proxy import TcpProxy

OUTAGE_S = 30.0
DRAINED_WITHIN_S = 10.0
NOT_READY_WITHIN_S = 5.0
SETTLE_S = 60.0  # generous: the hub shares two cores with the load and the collector


class Collector(threading.Thread):
    """Reads the run's queue as fast as it fills, keeping the interaction ids it has seen."""

    def __init__(self, url: str, queue: str) -> None:
        super().__init__(daemon=True)
        self.url, self.queue = url, queue
        self.ids: set[str] = set()
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(self.url))
        channel = conn.channel()
        try:
            while not self.stopping.is_set():
                method, _props, body = channel.basic_get(self.queue, auto_ack=True)
                if method is None:
                    time.sleep(0.02)
                elif method.routing_key.startswith("interaction.received."):
                    self.ids.add(json.loads(body)["data"]["id"])
        finally:
            conn.close()


class Load:
    """POST /v1/interactions one after another, as a steady stream of customers would."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base
        self.posted: list[tuple[float, str]] = []  # (monotonic time of the answer, interaction id)
        self.refused: list[int] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        n = 0
        while True:
            n += 1
            async with self.http.post(f"{self.base}/v1/interactions",
                                      json=sms(f"010-{5000 + n // 10000:04d}-{n % 10000:04d}")) as resp:
                if resp.status == 201:
                    self.posted.append((time.monotonic(), (await resp.json())["id"]))
                else:
                    self.refused.append(resp.status)
            await asyncio.sleep(0.02)

    def ids_until(self, moment: float) -> set[str]:
        return {iid for at, iid in self.posted if at <= moment}


class Readiness:
    """Polls /readyz and keeps (monotonic time, status) of every answer."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base
        self.answers: list[tuple[float, int]] = []
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                async with self.http.get(f"{self.base}/readyz") as resp:
                    self.answers.append((time.monotonic(), resp.status))
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)

    def first(self, status: int, after: float) -> float | None:
        return next((at for at, got in self.answers if at >= after and got == status), None)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def _until(predicate, timeout: float, what: str) -> float:
    """Poll until `predicate()` holds; returns when it did (monotonic)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        await asyncio.sleep(0.05)
    return time.monotonic()


async def _outage(broker: TcpProxy, silent: bool, load: Load, collector: Collector, ready: Readiness) -> None:
    """One outage of OUTAGE_S, then the promises about the return."""
    began = time.monotonic()
    if silent:
        broker.silence()
    else:
        await broker.stop()
    await _until(lambda: ready.first(503, began) is not None, NOT_READY_WITHIN_S + 1, "/readyz 503")
    not_ready_after = ready.first(503, began) - began  # type: ignore[operator]
    assert not_ready_after <= NOT_READY_WITHIN_S, f"/readyz said 503 only {not_ready_after:.1f} s after"
    await asyncio.sleep(OUTAGE_S - (time.monotonic() - began))
    if silent:
        broker.resume()
    else:
        await broker.start()
    back = time.monotonic()
    waiting = load.ids_until(back)
    await _until(lambda: waiting <= collector.ids, DRAINED_WITHIN_S,
                 f"events committed before the broker returned ({len(waiting - collector.ids)} missing)")
    await _until(lambda: ready.first(200, back) is not None, SETTLE_S, "/readyz 200 after the outage")


async def test_broker_cut_then_silent_under_load_loses_nothing_and_readyz_tells(
        hub_processes, fresh_pg_url, amqp_url, run_prefix):
    broker = TcpProxy(5672)
    await broker.start()
    exchange = f"{run_prefix}.events.outage.{uuid.uuid4().hex[:6]}"
    queue = BoundQueue(amqp_url, exchange, "#", run_prefix)  # every event routable: none comes back
    queue.declare()
    collector = Collector(amqp_url, queue.name)
    collector.start()
    config = hub_processes.config({
        "database_url": fresh_pg_url, "amqp_url": f"amqp://guest:guest@127.0.0.1:{broker.port}/%2F",
        "events_exchange": exchange, "backoffice": {"commands_enabled": False}})
    hub: HubProcess = hub_processes.start(config)
    try:
        async with aiohttp.ClientSession() as http:
            await hub.wait_healthy(http)
            await hub.wait_healthy(http, "/readyz")
            load, ready = Load(http, hub.base), Readiness(http, hub.base)
            load.start()
            try:
                await asyncio.sleep(2)  # steady traffic before the first outage
                await _outage(broker, False, load, collector, ready)
                await _outage(broker, True, load, collector, ready)
                await asyncio.sleep(2)
            finally:
                await load.stop()
                await ready.stop()
            everything = load.ids_until(time.monotonic())
            await _until(lambda: everything <= collector.ids, SETTLE_S, "every event in the queue")
            assert load.refused == [] and len(everything) > 100
            assert hub.alive()
    finally:
        collector.stopping.set()
        collector.join(10)
        broker.resume()
        await broker.stop()
        queue.delete()

    lines = [json.loads(line) for line in hub.log_text().splitlines() if line.startswith("{")]
    relay = [(entry["level"], entry["message"].split()[1].rstrip(";")) for entry in lines
             if entry.get("logger") == "omnihub.loops" and entry.get("loop") == "outbox-relay"]
    assert relay == [("warning", "failing"), ("info", "recovered")] * 2, hub.log_path
    pika_lines = [entry for entry in lines if entry.get("logger", "").startswith("pika")
                  and entry["level"] in {"warning", "error", "critical"}]
    assert len(pika_lines) <= 4, [entry["message"] for entry in pika_lines]
