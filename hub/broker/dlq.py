"""Operations on the dead-letter queue (`omnihub dlq list|show|replay|purge`), on BlockingConnection.

Each operation takes the messages present when it starts off the queue without acking them
(basic_get), acts on the ones the filters match, and lets the rest return to the queue when its
channel closes: nothing is lost if the command dies half-way, and a message the command leaves
alone is never consumed.

Replay republishes a message to its original exchange and routing key (every queue bound to it
sees it again; consumers dedupe on message_id) or, with `to_queue`, only to the queue it died in
(through the default exchange). It is acked off the dead queue only after the broker confirms the
republish.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pika

from hub.broker import dead_letters as deadletter
from hub.broker.dead_letters import DeadLetter


@dataclass(frozen=True)
class Filters:
    queue: str | None = None  # the queue the message died in (glob)
    reason: str | None = None  # glob, e.g. "invalid" or "broker:*"
    routing_key: str | None = None  # the original routing key (glob), e.g. "profile.*"
    message_id: str | None = None
    limit: int | None = None

    def match(self, letter: DeadLetter) -> bool:
        checks = ((self.queue, letter.queue), (self.reason, letter.reason), (self.routing_key, letter.routing_key))
        if any(p is not None and not fnmatch.fnmatchcase(v, p) for p, v in checks):
            return False
        return self.message_id is None or letter.message_id == self.message_id


@dataclass
class Dead:
    tag: int
    props: pika.BasicProperties
    body: bytes
    letter: DeadLetter


@contextmanager
def _channel(url: str) -> Iterator[Any]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        yield conn.channel()
    finally:
        if conn.is_open:
            conn.close()  # unacked messages go back to the queue


def _take(channel: Any, queue: str, filters: Filters) -> list[Dead]:
    """Every message now in the queue, unacked; returns those the filters match."""
    count = channel.queue_declare(queue, passive=True).method.message_count
    matched: list[Dead] = []
    for _ in range(count):
        method, props, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            break
        letter = deadletter.describe(props, method.routing_key)
        if filters.match(letter) and (filters.limit is None or len(matched) < filters.limit):
            matched.append(Dead(method.delivery_tag, props, body, letter))
    return matched


def list_dead(url: str, queue: str, filters: Filters) -> list[Dead]:
    with _channel(url) as channel:
        return _take(channel, queue, filters)


def replay(url: str, queue: str, filters: Filters, *, to_queue: bool = False,
           progress: Callable[[int, int | None], None] = lambda done, total: None) -> tuple[int, list[str]]:
    """Republish the matching messages; returns (replayed, errors). `progress(done, matching)` as it goes."""
    replayed, errors = 0, []
    with _channel(url) as channel:
        channel.confirm_delivery()
        taken = _take(channel, queue, filters)
        for done, dead in enumerate(taken):
            progress(done, len(taken))
            letter = dead.letter
            exchange, key = ("", letter.queue) if to_queue else (letter.exchange, letter.routing_key)
            if not to_queue and not key:
                errors.append(f"{letter.message_id}: no original routing key recorded")
                continue
            props = deadletter.dead_properties(dead.props, deadletter.replay_headers(dead.props.headers))
            try:
                channel.basic_publish(exchange, key, dead.body, props, mandatory=True)
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                errors.append(f"{letter.message_id}: not routable to {exchange or '(default)'}/{key}: {exc}")
                continue
            channel.basic_ack(dead.tag)
            replayed += 1
        progress(len(taken), len(taken))
    return replayed, errors


def purge(url: str, queue: str, filters: Filters) -> int:
    with _channel(url) as channel:
        taken = _take(channel, queue, filters)
        for dead in taken:
            channel.basic_ack(dead.tag)
        return len(taken)
