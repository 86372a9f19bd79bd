"""One AsyncEngine per process, configured per backend.

The hub's engine has a connect timeout and a statement timeout (settings database_connect_timeout_s,
database_statement_timeout_s), so a database that refuses, drops or silently swallows connections
fails a request within seconds instead of holding it for as long as the outage lasts. On
PostgreSQL the server cancels a statement at the timeout (statement_timeout: a slow query), and
asyncpg gives up STATEMENT_CLIENT_MARGIN_S later when the server says nothing at all (a cut cable,
a firewall dropping packets); a connection that timed out is discarded, never handed out again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# Execution option marking a unit of work that will write: on SQLite it starts with BEGIN IMMEDIATE.
WRITE_OPTION = "omnihub_write"

# The client waits this much longer than the server's statement_timeout, so a slow statement is
# cancelled by the server (the connection stays usable) and only a silent server trips the client's.
STATEMENT_CLIENT_MARGIN_S = 1.0


def create_engine(database_url: str, *, connect_timeout_s: float | None = None,
                  statement_timeout_s: float | None = None,
                  on_reachable: Callable[[], None] | None = None) -> AsyncEngine:
    """The engine for `database_url`; without timeouts (the command-line tools, migrations), the
    driver's own defaults apply. `on_reachable` is called each time PostgreSQL hands out a
    connection that has just answered (the pool's pre-ping, or a fresh connect): the database is up."""
    url = make_url(database_url)
    pool_timeout = connect_timeout_s if connect_timeout_s is not None else 30.0
    if url.get_backend_name() == "sqlite":
        # SQLite's lock wait stays busy_timeout (_sqlite_connect); a connection from the pool is
        # waited for as long as a connect would be.
        engine = create_async_engine(url, pool_size=8, max_overflow=0, pool_timeout=pool_timeout)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, pool_timeout=pool_timeout,
                                 connect_args=_connect_args(url, connect_timeout_s, statement_timeout_s))
    event.listen(engine.sync_engine, "handle_error", _discard_timed_out_connection)
    if url.get_driver_name() == "asyncpg":
        event.listen(engine.sync_engine.pool, "invalidate", _cut_silent_connection)
    if on_reachable is not None:
        event.listen(engine.sync_engine.pool, "checkout", lambda *_args: on_reachable())
    return engine


def _connect_args(url: URL, connect_timeout_s: float | None, statement_timeout_s: float | None) -> dict[str, Any]:
    if url.get_driver_name() != "asyncpg":
        return {}
    args: dict[str, Any] = {}
    if connect_timeout_s is not None:
        args["timeout"] = connect_timeout_s
    if statement_timeout_s is not None:
        args["command_timeout"] = statement_timeout_s + STATEMENT_CLIENT_MARGIN_S
        args["server_settings"] = {**POSTGRES_SETTINGS,
                                   "statement_timeout": str(max(1, round(statement_timeout_s * 1000)))}
    else:
        args["server_settings"] = dict(POSTGRES_SETTINGS)
    return args


def _discard_timed_out_connection(context: ExceptionContext) -> None:
    """A statement asyncpg gave up on (TimeoutError) or that found its connection's socket broken
    (OSError) leaves the connection mid-protocol. SQLAlchemy sees no DBAPI error there, so it is
    told this is a disconnect: the pool drops the connection instead of handing it to the next
    request."""
    error = context.original_exception
    if isinstance(error, TimeoutError):
        context.is_disconnect = True
        # Only this one: the pool would close every other connection politely on its next checkout,
        # two seconds each on a silent server; the pre-ping tells the live from the dead instead.
        context.invalidate_pool_on_disconnect = False
    elif isinstance(error, OSError):
        context.is_disconnect = True


def _cut_silent_connection(dbapi_connection: Any, _record: Any, exception: BaseException | None) -> None:
    """A connection dropped because the server said nothing (a statement or the pre-ping timed out)
    is cut at once: the driver's polite goodbye would wait two more seconds on the silent server."""
    if isinstance(exception, TimeoutError) and dbapi_connection is not None:
        dbapi_connection.driver_connection.terminate()


# Each execution of a prepared statement is planned for the table as it is then. A generic plan,
# which PostgreSQL settles on after five executions, is kept until the table's statistics change:
# one made while the tables were empty scans them whole, and goes on doing so as they fill.
POSTGRES_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


WRITER_CACHE_KIB = 32 * 1024


def create_sync_sqlite_engine(url: URL, *, wait_for_lock: bool = True) -> Engine:
    """The stdlib-driver twin of an aiosqlite engine, for the ingest writer.

    With wait_for_lock=False a connection that finds another one writing fails at once (SQLITE_BUSY)
    instead of waiting: the event loop's thread must never sleep on a lock that a coroutine on that
    same loop holds.
    """
    engine = sa_create_engine(url.set(drivername="sqlite"), pool_size=1, max_overflow=0)
    event.listen(engine, "connect", _sqlite_connect if wait_for_lock else _sqlite_connect_no_wait)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def writer(engine: AsyncEngine | Engine) -> AsyncEngine | Engine:
    """The engine for units of work that read and then write."""
    return engine.execution_options(**{WRITE_OPTION: True})


def _sqlite_connect(dbapi_conn, _record) -> None:
    # The driver's own implicit BEGIN is switched off so _sqlite_begin decides how a transaction opens.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    # WAL lets readers run beside the one writer; synchronous=FULL because a 2xx promises the
    # interaction survives a power cut, and group commit keeps the extra fsync cheap.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_connect_no_wait(dbapi_conn, record) -> None:
    _sqlite_connect(dbapi_conn, record)
    dbapi_conn.execute("PRAGMA busy_timeout=0")
    # The ingest writer's connection (kept open between groups): a page cache big enough for the
    # B-tree pages every group touches, instead of SQLite's 2 MiB default and a pread per miss.
    dbapi_conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")


def _sqlite_begin(conn) -> None:
    # A deferred transaction that reads and then writes fails at once (SQLITE_BUSY, no waiting)
    # when another connection wrote in between; IMMEDIATE takes the write lock first and waits.
    if conn.get_execution_options().get(WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def is_sqlite(engine: AsyncEngine | Engine) -> bool:
    return engine.dialect.name == "sqlite"
