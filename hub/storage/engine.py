"""One AsyncEngine per process, configured per backend."""

from __future__ import annotations

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# Execution option marking a unit of work that will write: on SQLite it starts with BEGIN IMMEDIATE.
WRITE_OPTION = "omnihub_write"


def create_engine(database_url: str) -> AsyncEngine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, pool_size=8, max_overflow=0)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True,
                               connect_args={"server_settings": POSTGRES_SETTINGS})


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
