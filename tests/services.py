"""Reaching the real PostgreSQL and RabbitMQ the tests use.

A service that does not answer skips the tests needing it, with the reason, unless
OMNIHUB_REQUIRE_SERVICES=1 (set by .ci/run): then those tests fail.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import uuid

import pytest

PG_ADMIN_DSN = os.environ.get("OMNIHUB_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("OMNIHUB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

# One prefix per test run, for broker names and database names, so two runs never collide.
RUN_ID = uuid.uuid4().hex[:8]
RUN_PREFIX = f"t{RUN_ID}"


def services_required() -> bool:
    return os.environ.get("OMNIHUB_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    if services_required():
        pytest.fail(f"{reason} (OMNIHUB_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def rabbitmq_url() -> str:
    if not port_open("127.0.0.1", 5672):
        unavailable("RabbitMQ does not answer on 127.0.0.1:5672")
    return AMQP_URL


def _pg_admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # A thread of its own: this may be reached from inside a running event loop (an async fixture).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def create_pg_database(suffix: str = "") -> str:
    """Create a fresh database for this run (and `suffix`, for a test wanting its own) and return
    its SQLAlchemy URL."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        unavailable("asyncpg is not installed (pip install -e '.[postgres]')")
    if not port_open("127.0.0.1", 5432):
        unavailable("PostgreSQL does not answer on 127.0.0.1:5432")
    name = f"omnihub_{RUN_PREFIX}{suffix}"
    try:
        _pg_admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - any failure here means "no usable server"
        unavailable(f"PostgreSQL refused CREATE DATABASE: {exc}")
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def queue_depth(url: str, queue: str) -> int:
    """Messages waiting in `queue`, asked with a passive declare (the queue must exist)."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()

