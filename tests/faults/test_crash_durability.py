"""5,000 signed Twilio SMS webhooks while the hub is SIGKILLed twice, on SQLite and on PostgreSQL.

What a 2xx promises (DESIGN section 1): the interaction is durable, and its event reaches RabbitMQ
(the outbox in the same transaction, the relay after). The client behaves as a provider does: a
request that got no 2xx (refused while the hub was down, or cut by the kill) is sent again until
it gets one, so some requests reach the hub twice, a few of them after the first was committed.

Asserted: every MessageSid that got a 2xx is stored exactly once, nothing else is stored, and every
stored interaction's `interaction.received.sms` event is in a queue of this run's own. The relay
publishes at least once (a kill between the broker's confirm and marking the row published sends
it again), so duplicate events are counted and printed (`-s`), not forbidden; consumers dedupe on
message_id.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
import uuid
from typing import Self
from urllib.parse import urlencode

import aiohttp
import pika
import pytest
from sqlalchemy import text

from hub.storage.engine import create_engine
from tests import services
from tests.adapters.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER, inbound_params, sid
from tests.faults.harness import HubProcess, HubProcesses

REQUESTS = 5_000
CONCURRENCY = 32
KILL_AFTER = (1_500, 3_300)  # 2xx answers counted before each SIGKILL
PUBLIC_BASE_URL = "https://hub.example.com"  # what Twilio was given: the signatures are over it
INBOUND = "/channels/sms_twilio/inbound"
DEADLINE_S = 240.0  # the whole run, generous for two shared cores


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/omnihub.db"
    return request.getfixturevalue("fresh_pg_url")


class EventQueue:
    """A queue of this run bound to the hub's events exchange (both named with the run prefix)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.exchange = f"{services.RUN_PREFIX}.events.{uuid.uuid4().hex[:6]}"
        self.queue = f"{self.exchange}.received"

    def __enter__(self) -> Self:
        with self._channel() as ch:
            ch.exchange_declare(self.exchange, "topic", durable=True)
            ch.queue_declare(self.queue, durable=True)
            ch.queue_bind(self.queue, self.exchange, "interaction.received.#")
        return self

    def __exit__(self, *exc) -> None:
        with self._channel() as ch:
            ch.queue_delete(self.queue)
            ch.exchange_delete(self.exchange)

    class _Open:
        def __init__(self, url: str) -> None:
            self.conn = pika.BlockingConnection(pika.URLParameters(url))

        def __enter__(self):
            return self.conn.channel()

        def __exit__(self, *exc) -> None:
            self.conn.close()

    def _channel(self) -> EventQueue._Open:
        return EventQueue._Open(self.url)

    def drain(self, idle_s: float = 3.0) -> list[tuple[str, dict]]:
        """Every message waiting, as (message_id, event), until none came for idle_s."""
        got = []
        with self._channel() as ch:
            ch.basic_qos(prefetch_count=1000)
            for method, props, body in ch.consume(self.queue, auto_ack=True, inactivity_timeout=idle_s):
                if method is None:
                    break
                got.append((props.message_id, json.loads(body)))
            ch.cancel()
        return got


class Load:
    """Signed webhooks, each sent again until it gets a 2xx; the hub it goes to can change."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.base = ""
        self.answered: set[str] = set()
        self.attempts = self.refused = 0
        self.progress = asyncio.Condition()

    async def send(self, params: dict[str, str], body: bytes, signature: str) -> None:
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
        while True:
            self.attempts += 1
            try:
                async with self.http.post(f"{self.base}{INBOUND}", data=body, headers=headers) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        break
                    assert resp.status in (502, 503), f"{resp.status}: not an outage answer"
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.refused += 1
            await asyncio.sleep(0.5)
        async with self.progress:
            self.answered.add(params["MessageSid"])
            self.progress.notify_all()

    async def wait_answered(self, count: int) -> None:
        async with self.progress:
            await self.progress.wait_for(lambda: len(self.answered) >= count)


def _signed_requests() -> list[tuple[dict[str, str], bytes, str]]:
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    out = []
    for n in range(REQUESTS):
        params = inbound_params(frm=f"+8210{5000_0000 + n % 200:08d}", body=f"message {n}", message_sid=sid())
        out.append((params, urlencode(params).encode(), validator.compute_signature(PUBLIC_BASE_URL + INBOUND, params)))
    return out


async def _outbox_drained(http: aiohttp.ClientSession, hub: HubProcess, timeout: float = 120.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        async with http.get(f"{hub.base}/readyz") as resp:
            if (await resp.json())["outbox"]["pending"] == 0:
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the outbox did not drain in {timeout}s; log: {hub.log_path}")


async def _stored(database_url: str) -> collections.Counter[str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT provider_ref FROM interactions WHERE channel = 'sms'"))
            return collections.Counter(r[0] for r in rows)
    finally:
        await engine.dispose()


async def test_every_2xx_is_stored_once_and_published_through_two_sigkills(hub_processes: HubProcesses, database_url,
                                                                          amqp_url, tmp_path, request):
    backend = request.node.callspec.params["database_url"]
    with EventQueue(amqp_url) as events:
        config = hub_processes.config({
            "database_url": database_url, "amqp_url": amqp_url, "events_exchange": events.exchange,
            "public_base_url": PUBLIC_BASE_URL, "blob_dir": str(tmp_path / "blobs"),
            "relay_poll_interval_s": 0.2, "relay_backoff_max_s": 1.0,
            "backoffice": {"commands_enabled": False},
            "adapters": {"sms_twilio": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
                                        "from_number": OUR_NUMBER, "fetch_media": False}},
        })
        signed = _signed_requests()
        started = time.monotonic()
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
            load = Load(http)
            hub = hub_processes.start(config)
            await hub.wait_healthy(http)
            load.base = hub.base
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(req):
                async with gate:
                    await load.send(*req)

            sending = asyncio.gather(*(one(r) for r in signed))
            kills = []
            for threshold in KILL_AFTER:
                await asyncio.wait_for(load.wait_answered(threshold), DEADLINE_S)
                hub.kill()
                kills.append(len(load.answered))
                hub = hub_processes.start(config)
                await hub.wait_healthy(http)
                load.base = hub.base
            await asyncio.wait_for(sending, DEADLINE_S)
            load_s = time.monotonic() - started
            await _outbox_drained(http, hub)

        stored = await _stored(database_url)
        assert set(stored) == load.answered, (
            f"{len(load.answered - set(stored))} answered 2xx but not stored, "
            f"{len(set(stored) - load.answered)} stored but never answered 2xx")
        assert max(stored.values()) == 1, "an interaction stored twice"
        assert len(stored) == REQUESTS

        received = await asyncio.to_thread(events.drain)
        by_ref = collections.Counter(event["data"]["provider_ref"] for _, event in received)
        missing = set(stored) - set(by_ref)
        assert not missing, f"{len(missing)} stored interactions never reached RabbitMQ"
        duplicates = sum(n - 1 for n in by_ref.values())
        assert len({mid for mid, _ in received}) == len(by_ref), "one event published under two message ids"
    print(f"\n[{backend}] {REQUESTS} webhooks, SIGKILL after {kills[0]} and {kills[1]} answers: "
          f"{load.attempts} attempts ({load.refused} refused or cut, then resent), {len(stored)} stored once each, "
          f"{len(received)} events for {len(by_ref)} interactions ({duplicates} duplicates); load {load_s:.1f} s")
