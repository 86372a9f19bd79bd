"""A database outage as clients see it (issue 15).

A real `omnihub serve` on PostgreSQL through a TCP proxy, under a steady load of
`POST /v1/interactions` (a unique provider ref each), with PostgreSQL cut for 15 s (every connection
reset, new ones refused) or silent for 15 s (connections stay open, no byte passes: a blackhole).
Clients get 503 with Retry-After, never 500 and never a wait as long as the outage; every 2xx is in
the database afterwards (counted in PostgreSQL itself); /readyz says 503 during and 200 after; the
log says it in a few lines; with a broker, every event reaches it after the database returns,
without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import asyncpg
import pytest

from tests import services
from tests.hub.amqp_consumer import BoundQueue
from tests.hub.payloads import sms
from tests.tcp_proxy import TcpProxy

OUTAGE_S = 15.0
BEFORE_S = 3.0  # load before the outage, to see it served
AFTER_S = 6.0  # load after, to see it served again
WORKERS = 4
CONNECT_TIMEOUT_S = 2.0
STATEMENT_TIMEOUT_S = 2.0
# The longest a request may take: the statement timeout, the second asyncpg waits beyond it, a
# connect timeout for a request whose connection broke under it, and slack for a loaded machine.
# Far below the outage itself, which is how long a request waited without timeouts.
LONGEST_REQUEST_S = STATEMENT_TIMEOUT_S + 1.0 + CONNECT_TIMEOUT_S + 4.0
EVENTS_AFTER_RESTORE_S = 10.0
# What the whole hub's log says about the outage, background loops included: at most this many
# lines (the HTTP side says two), not a line per try.
LOG_LINES_PER_OUTAGE = 20
FAILURE_WORDS = ("unavailable", "ConnectionRefusedError", "Connect call failed", "TimeoutError", "OperationalError",
                 "DBAPIError", "InterfaceError", "ConnectionDoesNotExist", "connection was closed", "Traceback")


@dataclass
class Answer:
    ref: str
    status: int
    started: float
    elapsed: float
    retry_after: str | None
    body: dict


@dataclass
class Run:
    answers: list[Answer] = field(default_factory=list)
    readyz: list[tuple[float, int]] = field(default_factory=list)
    cut_at: float = 0.0
    restored_at: float = 0.0
    log: list[str] = field(default_factory=list)  # the hub's log lines from the cut on


def _config(pg_url: str, proxy: TcpProxy, tmp_path, **extra) -> dict:
    return {
        "database_url": pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
        "database_connect_timeout_s": CONNECT_TIMEOUT_S,
        "database_statement_timeout_s": STATEMENT_TIMEOUT_S,
        "blob_dir": str(tmp_path / "blobs"),
        "backoffice": {"commands_enabled": False},
        "relay_poll_interval_s": 0.2,
        "relay_backoff_max_s": 1.0,
        **extra,
    }


async def _load(http: aiohttp.ClientSession, base: str, worker: int, run: Run, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    n = 0
    while not stop.is_set():
        n += 1
        ref = f"{services.RUN_PREFIX}-{worker}-{n}-{uuid.uuid4().hex[:6]}"
        started = loop.time()
        async with http.post(f"{base}/v1/interactions", json=sms(ref=ref)) as resp:
            body = await resp.json(content_type=None)
            run.answers.append(Answer(ref, resp.status, started, loop.time() - started,
                                      resp.headers.get("Retry-After"), body))
        await asyncio.sleep(0.05)


async def _watch_readyz(http: aiohttp.ClientSession, base: str, run: Run, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        async with http.get(f"{base}/readyz") as resp:
            run.readyz.append((loop.time(), resp.status))
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def _postgres_proxy() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(5432)
    await proxy.start()
    try:
        yield proxy
    finally:
        proxy.resume()
        await proxy.stop()
        await asyncio.sleep(0.5)  # the proxy's connections wind down before the test's loop closes


async def _outage(hub_processes, tmp_path, pg_url: str, proxy: TcpProxy, mode: str, **extra) -> Run:
    """Start a hub through `proxy`, load it, cut or silence PostgreSQL for OUTAGE_S, restore it."""
    loop = asyncio.get_running_loop()
    hub = hub_processes.start(hub_processes.config(_config(pg_url, proxy, tmp_path, **extra)))
    run = Run()
    stop = asyncio.Event()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            await hub.wait_healthy(http, "/readyz")
            tasks = [asyncio.create_task(_load(http, hub.base, w, run, stop)) for w in range(WORKERS)]
            tasks.append(asyncio.create_task(_watch_readyz(http, hub.base, run, stop)))
            await asyncio.sleep(BEFORE_S)
            log_offset = len(hub.log_text())
            run.cut_at = loop.time()
            if mode == "reset":
                await proxy.stop()
            else:
                proxy.silence()
            await asyncio.sleep(OUTAGE_S)
            if mode == "reset":
                await proxy.start()
            else:
                proxy.resume()
            run.restored_at = loop.time()
            await asyncio.sleep(AFTER_S)
            stop.set()
            await asyncio.gather(*tasks)
            # Ready again, without a restart.
            deadline = loop.time() + 30
            while (await http.get(f"{hub.base}/readyz")).status != 200:
                assert loop.time() < deadline, f"/readyz not 200 again; log: {hub.log_path}"
                await asyncio.sleep(0.2)
            assert hub.alive(), f"the hub exited; log: {hub.log_path}"
            run.log = hub.log_text()[log_offset:].splitlines()
    finally:
        stop.set()
    return run


async def _stored(pg_url: str, refs: list[str]) -> set[str]:
    conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        rows = await conn.fetch("SELECT provider_ref FROM interactions WHERE provider_ref = ANY($1::text[])", refs)
    finally:
        await conn.close()
    return {r["provider_ref"] for r in rows}


def _records(lines: list[str]) -> list[dict]:
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


@pytest.mark.parametrize("mode", ["reset", "silent"])
async def test_a_database_outage_is_answered_503_with_retry_after_and_loses_nothing(
        hub_processes, tmp_path, fresh_pg_url, mode):
    async with _postgres_proxy() as proxy:
        run = await _outage(hub_processes, tmp_path, fresh_pg_url, proxy, mode)
    where = f"log: {hub_processes.started[0].log_path}"
    answers = run.answers
    by_status: dict[int, int] = {}
    for a in answers:
        by_status[a.status] = by_status.get(a.status, 0) + 1
    assert set(by_status) <= {201, 503}, f"{by_status}; {where}"
    # Sent after the cut and answered before the restore (one sent just before the restore may
    # wait out the restore and succeed).
    during = [a for a in answers if run.cut_at + 1 < a.started and a.started + a.elapsed < run.restored_at]
    assert during and all(a.status == 503 for a in during), f"{by_status}; {where}"
    for a in answers:
        if a.status == 503:
            assert a.retry_after is not None and int(a.retry_after) > 0, a
            assert a.body["error"] == "unavailable", a.body
    assert any(a.status == 201 for a in answers if a.started < run.cut_at)
    assert any(a.status == 201 for a in answers if a.started > run.restored_at + 2), f"not served again; {where}"

    slowest = max(answers, key=lambda a: a.elapsed)
    assert slowest.elapsed < LONGEST_REQUEST_S, f"a request took {slowest.elapsed:.1f}s: {slowest}; {where}"

    answered = [a.ref for a in answers if a.status == 201]
    assert await _stored(fresh_pg_url, answered) == set(answered), f"a 2xx was lost; {where}"

    readyz_during = [s for t, s in run.readyz if run.cut_at + CONNECT_TIMEOUT_S + 3 < t < run.restored_at]
    assert readyz_during and set(readyz_during) == {503}, run.readyz

    # The HTTP side says it twice however many requests it refused: when it began, when it ended.
    records = _records(run.log)
    outage = [(r["level"], r["message"]) for r in records if r.get("logger") == "omnihub.outage"]
    assert [level for level, _ in outage] == ["warning", "info"], outage
    assert "503" in outage[0][1] and "reachable again" in outage[1][1]
    http_side = [r for r in records if r.get("logger") in ("omnihub.api", "omnihub.pipeline", "omnihub.adapters")
                 and _mentions_failure(json.dumps(r))]
    assert not http_side, f"{_tally(http_side)}; {where}"
    print(f"\n{mode}: {by_status}, slowest {slowest.elapsed:.2f}s, {outage[1][1]}")


def _mentions_failure(line: str) -> bool:
    return any(word in line for word in FAILURE_WORDS)


def _tally(records: list[dict]) -> dict[tuple[str, str], int]:
    tally: dict[tuple[str, str], int] = {}
    for r in records:
        key = (r.get("logger", "?"), r.get("worker") or r.get("message", "")[:60])
        tally[key] = tally.get(key, 0) + 1
    return tally


def _due(run: Run) -> dict[str, float]:
    """When each 2xx'd interaction's event is due: EVENTS_AFTER_RESTORE_S after the database returned,
    or after the 201 if that came later."""
    return {a.body["id"]: max(run.restored_at, a.started + a.elapsed) + EVENTS_AFTER_RESTORE_S
            for a in run.answers if a.status == 201}


async def _until_delivered(run: Run, arrivals: dict[str, float]) -> None:
    due = _due(run)
    loop = asyncio.get_running_loop()
    while not due.keys() <= arrivals.keys() and loop.time() < max(due.values()) + 1:
        await asyncio.sleep(0.5)


async def _collect(queue: BoundQueue, arrivals: dict[str, float], stop: asyncio.Event) -> None:
    """When each interaction.received event reached the test's queue (loop time)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        for _props, event, _key in await queue.adrain(10_000, timeout=0.5):
            arrivals.setdefault(event["data"]["id"], loop.time())


@pytest.mark.rabbitmq
@pytest.mark.parametrize("mode", ["reset", "silent"])
async def test_events_of_what_was_answered_2xx_reach_the_broker_after_the_outage(
        hub_processes, tmp_path, fresh_pg_url, amqp_url, mode):
    exchange = f"{services.RUN_PREFIX}.events.dbout.{uuid.uuid4().hex[:6]}"
    queue = BoundQueue(amqp_url, exchange, "interaction.received.#", services.RUN_PREFIX)
    queue.declare()
    arrivals: dict[str, float] = {}
    stop = asyncio.Event()
    collector = asyncio.create_task(_collect(queue, arrivals, stop))
    try:
        async with _postgres_proxy() as proxy:
            run = await _outage(hub_processes, tmp_path, fresh_pg_url, proxy, mode, amqp_url=amqp_url,
                                events_exchange=exchange)
            await _until_delivered(run, arrivals)
        due = _due(run)
        stop.set()
        await collector
        late = {i: arrivals.get(i) for i, by in due.items() if arrivals.get(i, float("inf")) > by}
        where = f"log: {hub_processes.started[0].log_path}"
        assert not late, (f"{len(late)} of {len(due)} events were not delivered within {EVENTS_AFTER_RESTORE_S}s "
                          f"of the database's return ({sum(v is None for v in late.values())} never); {where}")
        # The whole hub, its background loops included, says it in a few lines, not one per try.
        mentions = [r for r in _records(run.log) if _mentions_failure(json.dumps(r))]
        assert len(mentions) <= LOG_LINES_PER_OUTAGE, f"{len(mentions)} lines: {_tally(mentions)}; {where}"
    finally:
        stop.set()
        await asyncio.gather(collector, return_exceptions=True)
        queue.delete()
