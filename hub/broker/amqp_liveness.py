"""Noticing a broker that has gone silent, within seconds, on pika's asyncio connections.

A broker that stops answering without closing the socket (a hung node, a firewall dropping
packets) leaves a connection that looks open. AMQP heartbeats are how a client notices: we ask for
`heartbeat_s` (the client's value wins the negotiation), so RabbitMQ sends a frame at least every
heartbeat_s / 2 seconds on an idle connection and at most about heartbeat_s apart. pika's own
checker only looks every heartbeat + 5 s and closes after a whole idle interval, i.e. 7 to 12 s
late for heartbeat_s = 2; `SilenceWatch` looks four times a heartbeat and ends the connection once
nothing at all has arrived for 1.5 heartbeats (3 s for 2 s).

pika reports a failed connection attempt on seven ERROR lines of its connection workflow, and
every one of those failures reaches us as BrokerUnavailable, which the supervised loop logs once
per outage (hub.tasks). Those loggers are kept to CRITICAL here so an outage is a few lines, not
hundreds; pika's other loggers (channels, callbacks) keep their level.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pika
from pika.exceptions import AMQPConnectionError, AMQPError, AMQPHeartbeatTimeout

for _name in ("pika.adapters.utils.connection_workflow", "pika.adapters.utils.io_services_utils",
              "pika.adapters.base_connection"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

SILENT_AFTER_HEARTBEATS = 1.5
CHECKS_PER_HEARTBEAT = 4


def ask_heartbeat(params: pika.ConnectionParameters, heartbeat_s: int | None) -> None:
    """Ask for `heartbeat_s` (None: the broker's own value and no SilenceWatch)."""
    if heartbeat_s is not None:
        params.heartbeat = heartbeat_s


class SilenceWatch:
    """Calls `on_silent` once when `conn` has received nothing for SILENT_AFTER_HEARTBEATS
    heartbeats. Counting bytes, not heartbeat frames: any traffic shows the broker is alive."""

    def __init__(self, conn: Any, heartbeat_s: int, loop: asyncio.AbstractEventLoop,
                 on_silent: Callable[[str], None]) -> None:
        self._conn = conn
        self._loop = loop
        self._on_silent = on_silent
        self._silent_after = heartbeat_s * SILENT_AFTER_HEARTBEATS
        self._every = heartbeat_s / CHECKS_PER_HEARTBEAT
        self._bytes = conn.bytes_received
        self._heard_at = self._checked_at = loop.time()
        self._timer: asyncio.TimerHandle | None = loop.call_later(self._every, self._check)

    def _check(self) -> None:
        now = self._loop.time()
        received = self._conn.bytes_received
        if received != self._bytes or now - self._checked_at > 3 * self._every:
            # Traffic, or this check itself ran late: the event loop was held up (a long step on a
            # busy machine) and the socket may not have been read, so the silence is not the broker's.
            self._bytes, self._heard_at = received, now
        self._checked_at = now
        silent_for = now - self._heard_at
        if silent_for > self._silent_after:
            self._timer = None
            self._on_silent(f"broker silent for {silent_for:.1f}s (no heartbeat)")
            return
        self._timer = self._loop.call_later(self._every, self._check)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def abort_connection(conn: Any, error: Exception) -> None:
    """End a connection at once, without AMQP's close handshake: for a broker gone silent (a
    close-ok would never come; pika's own heartbeat checker does the same) and for a connection
    still opening (AMQP 0-9-1 closes those by dropping the socket, and pika's close() then trips
    over its own connection workflow: an AssertionError logged on two ERROR lines, pika #970).
    The connection's callbacks run with `error` as usual."""
    if not conn.is_closed:
        conn._terminate_stream(error)  # noqa: SLF001 - pika's own way, see the docstring


def end_silent(conn: Any, reason: str) -> None:
    abort_connection(conn, AMQPHeartbeatTimeout(reason))


def close_connection(conn: Any) -> None:
    """Close politely if open, else abort (see abort_connection); nothing if already closing."""
    if conn.is_closing or conn.is_closed:
        return
    if not conn.is_open:
        abort_connection(conn, AMQPConnectionError("abandoned while opening"))
        return
    try:
        conn.close()
    except AMQPError:  # already on its way down
        pass
