"""The worker's retries without a broker: a scripted target, a connection that records its sleeps,
a channel that records dead letters. How many tries, how long between them, what is logged, and
which events die with which reason and attempt count; the split of a batch on bad content; and the
reconnect backoff of `run`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence

import pika
import pytest
from pika.exceptions import AMQPConnectionError

from hub.backoffice.connectors import worker as worker_module
from hub.backoffice.connectors.config import WorkerConfig
from hub.backoffice.connectors.worker import Event, PartialFailure, PermanentError, Worker, _Delivery
from hub.broker import dead_letters as deadletter


class Transient(Exception):
    pass


class Bad(Exception):
    """A failure tied to an event's content (the target says it is not transient)."""


class Target:
    def __init__(self, behave: Callable[[list[str], int], None]) -> None:
        self.behave = behave
        self.calls: list[list[str]] = []
        self.closed = False

    def write(self, events: Sequence[Event]) -> None:
        ids = [e.id for e in events]
        self.calls.append(ids)
        self.behave(ids, len(self.calls))

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, Transient)

    def idle(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class Conn:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


class Channel:
    def __init__(self) -> None:
        self.dead: dict[str, dict] = {}
        self.acked: list[int] = []

    def basic_publish(self, exchange, routing_key, body, props, mandatory=False) -> None:
        self.dead[props.message_id] = props.headers

    def basic_ack(self, tag, multiple=False) -> None:
        self.acked.append(tag)


def _worker(behave, **config) -> tuple[Worker, Target, Conn, Channel]:
    defaults = {"attempts": 4, "backoff_initial_s": 0.05, "backoff_max_s": 0.15}
    cfg = WorkerConfig(name="t", bindings=["#"], **{**defaults, **config})
    target = Target(behave)
    w = Worker(cfg, target)
    w._conn, w._channel = Conn(), Channel()
    return w, target, w._conn, w._channel


def _batch(*ids: str) -> list[_Delivery]:
    return [_Delivery(n, "omnihub.events", "profile.updated", pika.BasicProperties(message_id=i),
                      json.dumps({"id": i}).encode()) for n, i in enumerate(ids, 1)]


def _dead(channel: Channel) -> dict[str, tuple[str, int, str]]:
    return {i: (h[deadletter.REASON], h[deadletter.ATTEMPTS], h[deadletter.ERROR])
            for i, h in channel.dead.items()}


def _retry_logs(caplog) -> list[tuple[int, int, str]]:
    return [(r.attempt, r.events, r.error) for r in caplog.records
            if r.getMessage() == "target write failed; retrying"]


def test_a_transient_failure_is_retried_with_capped_backoff_through_the_connection(caplog):
    def behave(ids, call):
        if call < 3:
            raise Transient("down")

    w, target, conn, channel = _worker(behave)
    with caplog.at_level(logging.WARNING, "omnihub.worker"):
        w._flush(_batch("a", "b"))
    assert target.calls == [["a", "b"]] * 3
    assert conn.slept == [0.05, 0.1]
    assert _retry_logs(caplog) == [(1, 2, "Transient('down')"), (2, 2, "Transient('down')")]
    assert channel.dead == {} and channel.acked == [2] and w.written == 2


def test_a_batch_that_keeps_failing_is_dead_lettered_after_attempts_tries(caplog):
    def behave(ids, call):
        raise Transient(f"down {call}")

    w, target, conn, channel = _worker(behave)
    with caplog.at_level(logging.WARNING, "omnihub.worker"):
        w._flush(_batch("a", "b"))
    assert target.calls == [["a", "b"]] * 4
    assert conn.slept == [0.05, 0.1, 0.15]  # 0.2 capped at backoff_max_s; no sleep after the last try
    assert [a for a, _, _ in _retry_logs(caplog)] == [1, 2, 3]
    died = ("failed", 4, "Transient('down 4')")
    assert _dead(channel) == {"a": died, "b": died}
    assert channel.acked == [2] and w.written == 0 and w.dead_lettered == 2


def test_bad_content_splits_the_batch_and_only_the_bad_event_dies():
    def behave(ids, call):
        if "b" in ids:
            raise Bad("b does not fit")

    w, target, conn, channel = _worker(behave)
    w._flush(_batch("a", "b", "c"))
    # No retry of the whole batch: split at once, then each alone; alone, every failure is retried.
    assert target.calls == [["a", "b", "c"], ["a"], ["b"], ["b"], ["b"], ["b"], ["c"]]
    assert conn.slept == [0.05, 0.1, 0.15]
    assert _dead(channel) == {"b": ("failed", 4, "Bad('b does not fit')")}
    assert w.written == 2


def test_a_permanent_error_splits_the_batch_and_dead_letters_the_event_at_once():
    def behave(ids, call):
        if "b" in ids:
            raise PermanentError("b can never be written")

    w, target, conn, channel = _worker(behave)
    w._flush(_batch("a", "b", "c"))
    assert target.calls == [["a", "b", "c"], ["a"], ["b"], ["c"]]
    assert conn.slept == []
    assert _dead(channel) == {"b": ("unwritable", 1, "PermanentError('b can never be written')")}
    assert w.written == 2


def test_a_permanent_error_after_transient_tries_counts_those_tries():
    def behave(ids, call):
        if call == 1:
            raise Transient("down")
        raise PermanentError("no")

    w, target, conn, channel = _worker(behave)
    w._flush(_batch("a"))
    assert target.calls == [["a"], ["a"]]
    assert conn.slept == [0.05]
    assert _dead(channel) == {"a": ("unwritable", 2, "PermanentError('no')")}


def test_a_partial_failure_retries_only_the_failed_events(caplog):
    def behave(ids, call):
        if call == 1:
            raise PartialFailure({"b": Transient("500 b"), "c": Transient("500 c")})
        if call == 2:
            raise PartialFailure({"c": Transient("500 c again")})

    w, target, conn, channel = _worker(behave)
    with caplog.at_level(logging.WARNING, "omnihub.worker"):
        w._flush(_batch("a", "b", "c"))
    assert target.calls == [["a", "b", "c"], ["b", "c"], ["c"]]
    assert conn.slept == [0.05, 0.1]
    assert _retry_logs(caplog) == [(1, 2, "Transient('500 b')"), (2, 1, "Transient('500 c again')")]
    assert channel.dead == {} and w.written == 3


def test_events_that_keep_failing_in_part_die_with_their_own_errors():
    def behave(ids, call):
        if call == 1:
            raise PartialFailure({"b": Transient("500 b"), "c": Transient("500 c")})
        if call == 2:
            raise PartialFailure({"b": Transient("500 b again")})
        raise Transient("endpoint down")

    w, target, conn, channel = _worker(behave)
    w._flush(_batch("a", "b", "c"))
    assert target.calls == [["a", "b", "c"], ["b", "c"], ["b"], ["b"]]
    assert _dead(channel) == {"b": ("failed", 4, "Transient('500 b again')")}
    assert w.written == 2


def test_attempts_one_means_one_try_and_no_sleep():
    def behave(ids, call):
        raise Transient("down")

    w, target, conn, channel = _worker(behave, attempts=1)
    w._flush(_batch("a"))
    assert target.calls == [["a"]] and conn.slept == []
    assert _dead(channel) == {"a": ("failed", 1, "Transient('down')")}


def test_run_reconnects_with_capped_backoff_reset_after_a_session_that_ends(monkeypatch, caplog):
    """A session that fails is retried at 0.2 s, doubling to reconnect_max_s; one that ends on its
    own (the broker cancelled the consumer) starts the backoff over; a stop during a wait ends it."""
    w, target, _, _ = _worker(lambda ids, call: None, reconnect_max_s=0.5)
    script = ["fail", "fail", "fail", "fail", "end", "fail", "fail", "stop"]

    def session() -> None:
        step = script.pop(0)
        if step == "end":
            return
        if step == "stop":
            w.stop()
        raise AMQPConnectionError(step)

    slept: list[float] = []
    monkeypatch.setattr(w, "_session", session)
    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(worker_module.signal, "signal", lambda *a: None)
    with caplog.at_level(logging.WARNING, "omnihub.worker"):
        w.run()
    assert script == []
    assert slept == [0.2, 0.4, 0.5, 0.5, 0.2, 0.4, 0.5]
    lost = [r for r in caplog.records if r.getMessage() == "broker session ended; reconnecting"]
    assert len(lost) == 7 and lost[-1].queue == "omnihub.worker.t"
    assert lost[-1].error == repr(AMQPConnectionError("stop"))
    assert target.closed


def test_run_does_not_retry_what_is_not_a_broker_failure(monkeypatch):
    w, target, _, _ = _worker(lambda ids, call: None)

    def session() -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(w, "_session", session)
    monkeypatch.setattr(worker_module.signal, "signal", lambda *a: None)
    with pytest.raises(RuntimeError, match="a bug"):
        w.run()
    assert target.closed
