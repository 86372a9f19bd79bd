"""The connector worker loop, on pika's BlockingConnection (one process per legacy target).

Deliveries are taken in batches (up to `batch_size`, within the `prefetch` window) and handed to
the target, which writes a batch in one transaction and skips events it has already handled
(every target keeps or relies on a record of event ids). The batch is acked only after the target
has committed, so a worker killed at any point loses nothing and, thanks to that record, writes
nothing twice.

Failures: a batch that fails for a transient reason (the target unreachable) is retried with
backoff; one that fails for a reason tied to its content is split and each event written alone,
so one poison event cannot hold back the rest. An event still failing after `attempts` tries, or
one that can never be written (PermanentError: not JSON, a value the layout cannot hold), is
published to omnihub.dead with the reason, its original exchange and routing key in headers, and
only then acked.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pika
from pika.exceptions import AMQPChannelError, AMQPConnectionError
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_exponential,
)

from hub.backoffice.connectors.config import WorkerConfig
from hub.broker import dead_letters as deadletter
from hub.broker.topology import declare_consumer_queue, declare_exchanges
from schemas import OmnihubError

log = logging.getLogger("omnihub.worker")


class PermanentError(OmnihubError):
    """This event can never be written as it is: dead-letter it at once, retrying cannot help."""


class PartialFailure(OmnihubError):
    """A target that commits event by event (HTTP) wrote some of the batch; these ids failed."""

    def __init__(self, errors: dict[str, BaseException]) -> None:
        super().__init__(f"{len(errors)} events failed")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Event:
    id: str  # the AMQP message_id: the CloudEvents id, which every target dedupes on
    routing_key: str
    body: bytes
    document: dict[str, Any]


class Target(Protocol):
    def write(self, events: Sequence[Event]) -> None:
        """Write every event not handled before, in one commit, or raise (nothing committed,
        except after PartialFailure, which names the events that were not)."""

    def is_transient(self, exc: BaseException) -> bool:
        """The failure is the target's (down, busy), not the events': retry the batch as it is."""

    def idle(self) -> None:
        """Nothing arrived for a while (time-based rotation and the like)."""

    def close(self) -> None: ...


@dataclass(slots=True)
class _Delivery:
    tag: int
    exchange: str
    routing_key: str
    props: pika.BasicProperties
    body: bytes


class Worker:
    def __init__(self, config: WorkerConfig, target: Target) -> None:
        self.config = config
        self.target = target
        self.queue = config.queue_name
        self._conn: Any = None
        self._channel: Any = None
        self._stopping = False
        self.written = self.dead_lettered = 0

    def stop(self, *_: Any) -> None:
        self._stopping = True

    def run(self) -> None:
        """Consume until stopped (SIGTERM/SIGINT), reconnecting with backoff after a broker outage."""
        signal.signal(signal.SIGTERM, self.stop)
        try:
            while not self._stopping:
                # A fresh policy whenever a session ends on its own (the broker cancelled the
                # consumer): the backoff grows only while sessions keep failing.
                for attempt in self._reconnecting():
                    if self._stopping:  # stopped during the wait
                        break
                    with attempt:
                        self._session()
        finally:
            self.target.close()

    def _reconnecting(self) -> Retrying:
        return Retrying(retry=retry_if_exception_type((AMQPConnectionError, AMQPChannelError, OSError)),
                        stop=stop_never,
                        wait=wait_exponential(multiplier=0.2, max=self.config.reconnect_max_s),
                        before_sleep=self._session_lost, sleep=time.sleep)

    def _session_lost(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("broker session ended; reconnecting", extra={"queue": self.queue, "error": repr(error)})

    def _session(self) -> None:
        c = self.config
        params = pika.URLParameters(c.amqp_url.get_secret_value())
        params.client_properties = {"connection_name": f"omnihub worker {c.name}"}
        self._conn = pika.BlockingConnection(params)
        try:
            ch = self._channel = self._conn.channel()
            if c.declare_topology:
                declare_exchanges(ch, c.topology())
                declare_consumer_queue(ch, c.topology(), self.queue, c.events_exchange, c.all_bindings)
            ch.confirm_delivery()  # dead letters are acked only once the broker has them
            ch.basic_qos(prefetch_count=c.prefetch)
            log.info("worker consuming", extra={"queue": self.queue, "bindings": c.all_bindings})
            batch: list[_Delivery] = []
            for method, props, body in ch.consume(self.queue, inactivity_timeout=c.idle_interval_s):
                if self._stopping:
                    break
                if method is None:
                    self._flush(batch)
                    self.target.idle()
                    continue
                batch.append(_Delivery(method.delivery_tag, method.exchange, method.routing_key, props, body))
                # Write as soon as the batch is full or nothing more is buffered: a burst fills
                # batches, a trickle is written without waiting for the idle timeout.
                if len(batch) >= c.batch_size or ch.get_waiting_message_count() == 0:
                    self._flush(batch)
        finally:
            try:
                if self._conn.is_open:
                    self._conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass

    # --- one batch -------------------------------------------------------------------------------

    def _flush(self, batch: list[_Delivery]) -> None:
        if not batch:
            return
        events: list[Event] = []
        by_id: dict[str, _Delivery] = {}
        for d in batch:
            event = _parse(d)
            if isinstance(event, PermanentError):
                self._dead_letter(d, "invalid_event", str(event), 1)
                continue
            if event.id in by_id:  # the same event twice in one batch: write it once
                continue
            by_id[event.id] = d
            events.append(event)
        if events:
            self._deliver(events, by_id)
        self._channel.basic_ack(batch[-1].tag, multiple=True)
        batch.clear()

    def _deliver(self, events: list[Event], by_id: dict[str, _Delivery]) -> None:
        failed = self._attempt(events, split_on_content=True)
        if failed is None:
            return
        if failed.split:
            for event in failed.events:
                alone = self._attempt([event], split_on_content=False)
                if alone is not None:
                    self._dead_letter(by_id[event.id], alone.reason, repr(alone.error), alone.attempts)
            return
        for event in failed.events:
            self._dead_letter(by_id[event.id], failed.reason, repr(failed.errors.get(event.id, failed.error)),
                              failed.attempts)

    def _attempt(self, events: list[Event], *, split_on_content: bool) -> _Failed | None:
        """Write with up to `attempts` tries; None when everything was written."""
        remaining = events
        errors: dict[str, BaseException] = {}

        def log_retry(state: RetryCallState) -> None:
            error = _first_error(state.outcome.exception()) if state.outcome else None
            log.warning("target write failed; retrying", extra={
                "queue": self.queue, "attempt": state.attempt_number, "events": len(remaining),
                "error": repr(error)})

        c = self.config
        retrying = Retrying(stop=stop_after_attempt(c.attempts),
                            wait=wait_exponential(multiplier=c.backoff_initial_s, max=c.backoff_max_s),
                            retry=retry_if_exception_type(Exception), before_sleep=log_retry,
                            sleep=self._sleep)
        try:
            for attempt in retrying:
                with attempt:
                    try:
                        self.target.write(remaining)
                        self.written += len(remaining)
                    except PartialFailure as exc:
                        self.written += len(remaining) - len(exc.errors)
                        errors.update(exc.errors)
                        remaining = [e for e in remaining if e.id in exc.errors]
                        raise
                    except PermanentError as exc:  # retrying cannot help; in a batch, find the event
                        tries = attempt.retry_state.attempt_number
                        if split_on_content and len(remaining) > 1:
                            return _Failed(remaining, exc, tries, "failed", split=True)
                        return _Failed(remaining, exc, tries, "unwritable")
                    except Exception as exc:  # noqa: BLE001 - classified by the target
                        if split_on_content and len(remaining) > 1 and not self.target.is_transient(exc):
                            tries = attempt.retry_state.attempt_number
                            return _Failed(remaining, exc, tries, "failed", split=True)
                        raise
        except RetryError as exc:
            error = _first_error(exc.last_attempt.exception())
            return _Failed(remaining, error, c.attempts, "failed", errors=errors)
        return None

    def _sleep(self, seconds: float) -> None:
        # BlockingConnection.sleep keeps heartbeats going while we wait.
        self._conn.sleep(seconds)

    def _dead_letter(self, d: _Delivery, reason: str, error: str, attempts: int) -> None:
        headers = deadletter.dead_headers(d.props.headers, exchange=d.exchange, routing_key=d.routing_key,
                                          queue=self.queue, reason=reason, error=error, attempts=attempts)
        self._channel.basic_publish(self.config.dead_exchange, self.queue, d.body,
                                    deadletter.dead_properties(d.props, headers), mandatory=True)
        self.dead_lettered += 1
        log.error("event dead-lettered", extra={"queue": self.queue, "message_id": d.props.message_id,
                                                "reason": reason, "attempts": attempts, "error": error[:300]})


@dataclass
class _Failed:
    events: list[Event]
    error: BaseException
    attempts: int
    reason: str
    split: bool = False
    errors: dict[str, BaseException] | None = None

    def __post_init__(self) -> None:
        self.errors = self.errors or {}


def _first_error(exc: BaseException | None) -> BaseException | None:
    """What a failed try is reported as: for a PartialFailure, its first event's error."""
    if isinstance(exc, PartialFailure):
        return next(iter(exc.errors.values()))
    return exc


def _parse(d: _Delivery) -> Event | PermanentError:
    message_id = d.props.message_id
    try:
        document = json.loads(d.body)
    except (ValueError, UnicodeDecodeError) as exc:
        return PermanentError(f"body is not JSON: {exc}")
    if not isinstance(document, dict):
        return PermanentError("body is not a JSON object (a CloudEvent)")
    event_id = message_id or document.get("id")
    if not event_id:
        return PermanentError("no message_id and no CloudEvents id: nothing to dedupe on")
    return Event(str(event_id), d.routing_key, d.body, document)


def lookup(document: dict[str, Any], path: str) -> Any:
    """A value of the CloudEvent by dotted path (`data.profile_id`, `subject`); `$routing_key` is
    not in the document and is handled by the caller. Missing parts give None."""
    value: Any = document
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def run_worker(config: WorkerConfig, make_target: Callable[[WorkerConfig], Target]) -> int:
    worker = Worker(config, make_target(config))
    try:
        worker.run()
    except KeyboardInterrupt:
        pass
    return 0
