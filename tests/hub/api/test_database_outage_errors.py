"""Which errors are an outage (503, Retry-After) and which a bug or a bad request, told from the real
errors the drivers raise; the engine's connect, statement and pool timeouts; the outage log."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy import create_engine as sa_create_engine

from adapters.base import HubUnavailable
from hub.app import create_app
from hub.http_errors import OutageLog, ServiceUnavailable, outage_name, unavailable_cause
from hub.ingest.pipeline import PipelineStopped
from hub.storage.engine import create_engine
from tests.hub.payloads import sms
from tests.tcp_proxy import TcpProxy, free_port


def _raised(fn) -> Exception:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the error is what the test looks at
        return exc
    raise AssertionError("nothing was raised")


@pytest.fixture
def sqlite_file(tmp_path):
    path = tmp_path / "outage.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    return path


def test_sqlite_locked_past_its_wait_is_an_outage_and_a_missing_table_is_not(sqlite_file):
    holder = sqlite3.connect(sqlite_file, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    engine = sa_create_engine(f"sqlite:///{sqlite_file}", connect_args={"timeout": 0})
    try:
        with engine.connect() as conn:
            locked = _raised(lambda: conn.execute(text("INSERT INTO t VALUES (1)")))
            missing = _raised(lambda: conn.execute(text("SELECT * FROM nope")))
            syntax = _raised(lambda: conn.execute(text("SELEC 1")))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()
    assert "locked" in str(locked) and unavailable_cause(locked) is locked
    assert "no such table" in str(missing) and unavailable_cause(missing) is None
    assert unavailable_cause(syntax) is None
    assert outage_name(locked) == "OperationalError"


@pytest.fixture
async def pg_engine(pg_database_url):
    engine = create_engine(pg_database_url, connect_timeout_s=1, statement_timeout_s=0.3)
    yield engine
    await engine.dispose()


async def _error(engine, sql: str, params: dict | None = None) -> Exception:
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql), params or {})
    except Exception as exc:  # noqa: BLE001 - the error is what the test looks at
        return exc
    raise AssertionError(f"{sql} raised nothing")


async def test_a_statement_past_the_timeout_is_cancelled_by_postgresql_and_is_an_outage(pg_engine):
    slow = await _error(pg_engine, "SELECT pg_sleep(5)")
    assert getattr(slow.orig, "sqlstate", None) == "57014"  # query_canceled: the server-side statement_timeout
    assert unavailable_cause(slow) is slow
    assert "QueryCanceledError" in outage_name(slow)
    async with pg_engine.connect() as conn:  # the connection it ran on is fine for the next one
        assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1


@pytest.mark.parametrize("sql, params", [
    ("SELECT CAST(:x AS integer)", {"x": "not a number"}),  # a value the driver cannot send
    ("SELEC 1", None),  # a syntax error
    ("SELECT * FROM no_such_table", None),
    ("SELECT 1 / 0", None),
])
async def test_a_bad_statement_on_postgresql_is_not_an_outage(pg_engine, sql, params):
    error = await _error(pg_engine, sql, params)
    assert unavailable_cause(error) is None, repr(error)


async def test_a_refused_connect_and_an_exhausted_pool_are_outages(pg_database_url):
    closed = pg_database_url.replace("127.0.0.1:5432", f"127.0.0.1:{free_port()}")
    engine = create_engine(closed, connect_timeout_s=1, statement_timeout_s=1)
    try:
        refused = await _error(engine, "SELECT 1")
    finally:
        await engine.dispose()
    assert isinstance(refused, ConnectionRefusedError) and unavailable_cause(refused) is refused

    engine = create_engine(pg_database_url, connect_timeout_s=0.3, statement_timeout_s=1)
    held = [await engine.connect() for _ in range(20)]  # the pool's size and overflow
    try:
        exhausted = await _error(engine, "SELECT 1")  # waits pool_timeout (the connect timeout), no longer
    finally:
        for conn in held:
            await conn.close()
        await engine.dispose()
    assert type(exhausted).__name__ == "TimeoutError" and exhausted.__module__ == "sqlalchemy.exc"
    assert unavailable_cause(exhausted) is exhausted


async def test_a_silent_postgresql_times_out_and_its_connection_is_not_reused(pg_database_url):
    proxy = TcpProxy(5432)
    await proxy.start()
    engine = create_engine(pg_database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
                           connect_timeout_s=2, statement_timeout_s=0.5)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
        proxy.silence()
        on_a_pooled_connection = await _error(engine, "SELECT 1")
        assert isinstance(on_a_pooled_connection, TimeoutError)
        on_a_new_connection = await _error(engine, "SELECT 1")
        assert isinstance(on_a_new_connection, TimeoutError)
        assert unavailable_cause(on_a_pooled_connection) and unavailable_cause(on_a_new_connection)
        proxy.resume()
        # The timed-out connection was discarded: the first query after the database returns works.
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        proxy.resume()
        await engine.dispose()
        await proxy.stop()


@pytest.mark.parametrize("error", [
    PipelineStopped("the ingest writer is not running"),
    ServiceUnavailable("no"),
    HubUnavailable("the database is down"),
    ConnectionResetError(104, "Connection reset by peer"),
    OSError(28, "No space left on device"),
], ids=lambda e: type(e).__name__)
def test_the_hubs_own_unavailability_and_socket_or_disk_errors_are_outages(error):
    assert unavailable_cause(error) is error


def test_an_error_raised_because_of_an_outage_is_one_and_a_plain_bug_is_not():
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as exc:
            raise RuntimeError("could not load the ruleset") from exc
    except RuntimeError as wrapped:
        assert isinstance(unavailable_cause(wrapped), ConnectionRefusedError)
    assert unavailable_cause(RuntimeError("disk on fire")) is None
    assert unavailable_cause(ValueError("bad")) is None
    assert unavailable_cause(KeyError("x")) is None


def test_an_outage_is_logged_when_it_begins_and_when_it_ends_not_per_request(caplog):
    now = [100.0]
    outages = OutageLog(clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="omnihub.outage"):
        outages.reachable()  # nothing to end
        for _ in range(500):
            outages.refused_one(ConnectionRefusedError(111, "Connection refused"))
        now[0] = 115.5
        outages.reachable()
        outages.reachable()
        # Answered and refused by turns (a failover, a pool out of connections): one outage.
        for step in range(20):
            now[0] = 120.0 + step * 0.5
            outages.refused_one(TimeoutError())
            outages.reachable()
        now[0] = 131.0
        outages.reachable()
    records = caplog.records
    assert [r.levelname for r in records] == ["WARNING", "INFO", "WARNING", "INFO"]
    assert "ConnectionRefusedError" in records[0].getMessage() and records[0].error == "ConnectionRefusedError"
    assert records[1].outage_s == 15.5 and records[1].refused == 500
    assert "15.5 s" in records[1].getMessage()
    assert "TimeoutError" in records[2].getMessage()
    assert records[3].outage_s == 11.0 and records[3].refused == 20


async def test_an_ingest_held_up_by_a_sqlite_lock_past_busy_timeout_is_answered_503_then_taken(
        aiohttp_client, make_settings, sqlite_url):
    client = await aiohttp_client(create_app(make_settings(database_url=sqlite_url)))
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite+aiosqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, for longer than SQLite waits (10 s)
    try:
        resp = await client.post("/v1/interactions", json=sms(ref="LOCKED-1"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert resp.status == 503, await resp.text()
    assert int(resp.headers["Retry-After"]) > 0
    assert (await resp.json())["error"] == "unavailable"
    resp = await client.post("/v1/interactions", json=sms(ref="LOCKED-1"))  # the client sends it again
    assert resp.status == 201, await resp.text()
