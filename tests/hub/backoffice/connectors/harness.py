"""Running connector workers as real processes against the real broker, for the kill tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pika
import yaml

from hub.backoffice.connectors.config import WorkerConfig
from hub.broker.amqp import ConfirmPublisher, OutgoingMessage
from hub.broker.topology import declare_consumer_queue, declare_exchanges
from tests.services import queue_depth  # noqa: F401 - the connector tests call harness.queue_depth

ROOT = Path(__file__).resolve().parents[4]


def cloud_event(n: int, *, event_type: str = "profile.updated", **data) -> tuple[str, bytes, str]:
    event_id = str(uuid.uuid4())
    body = {"specversion": "1.0", "id": event_id, "type": event_type, "source": "omnihub",
            "time": "2026-11-23T01:00:00+00:00", "subject": f"p-{n}", "datacontenttype": "application/json",
            "data": {"profile_id": f"p-{n:06d}", "n": n, "display_name": f"Customer {n}", **data}}
    return event_id, json.dumps(body).encode(), event_type


def publish(url: str, exchange: str, events: list[tuple[str, bytes, str]], batch: int = 1000) -> None:
    """Publish with confirms, many in flight: the hub's own confirm publisher."""

    async def run() -> None:
        publisher = ConfirmPublisher(url, exchange)
        await publisher.connect()
        try:
            for i in range(0, len(events), batch):
                await publisher.publish_batch([OutgoingMessage(routing_key=key, body=body, message_id=eid)
                                               for eid, body, key in events[i : i + batch]])
        finally:
            await publisher.close()

    asyncio.run(run())


def worker_config(prefix: str, name: str, url: str, target: dict, **more) -> dict:
    return {"amqp_url": url, "name": name, "queue": f"{prefix}.worker.{name}", "bindings": ["profile.*"],
            "events_exchange": f"{prefix}.events", "commands_exchange": f"{prefix}.commands",
            "dead_exchange": f"{prefix}.dead", "dead_queue": f"{prefix}.dead", "attempts": 3,
            "backoff_initial_s": 0.01, "backoff_max_s": 0.05, "target": target, **more}


def declare(config: dict) -> None:
    """What the worker declares, declared first so nothing published before it starts is unroutable."""
    cfg = WorkerConfig.model_validate(config)
    conn = pika.BlockingConnection(pika.URLParameters(cfg.amqp_url.get_secret_value()))
    ch = conn.channel()
    declare_exchanges(ch, cfg.topology())
    declare_consumer_queue(ch, cfg.topology(), cfg.queue_name, cfg.events_exchange, cfg.bindings)
    conn.close()


def delete(config: dict) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(config["amqp_url"]))
    ch = conn.channel()
    for q in (config["queue"], config["dead_queue"]):
        ch.queue_delete(q)
    for x in (config["events_exchange"], config["commands_exchange"], config["dead_exchange"]):
        ch.exchange_delete(x)
    conn.close()


class WorkerProcess:
    """`omnihub worker KIND --config FILE` as a subprocess of the test."""

    def __init__(self, kind: str, config: dict, tmp: Path) -> None:
        self.kind = kind
        self.path = tmp / f"worker-{config['name']}.yaml"
        self.write(config)
        self.proc: subprocess.Popen | None = None
        self.log = tmp / f"worker-{config['name']}.log"

    def write(self, config: dict) -> None:
        self.path.write_text(yaml.safe_dump(config))

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "worker", self.kind, "--config",
                                          str(self.path), "--log-level", "WARNING"], cwd=ROOT, env=env,
                                         stdout=log, stderr=log)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def wait_for(predicate, timeout: float, what: str, worker: WorkerProcess | None = None, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if worker is not None and not worker.alive():
            raise AssertionError(f"worker died while waiting for {what}:\n{worker.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f"\n{worker.tail()}" if worker else ""))
        time.sleep(interval)


def dlq(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub.cli", "dlq", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
