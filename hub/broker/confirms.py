"""Publisher-confirm bookkeeping: the messages, batches and delivery tags of one confirm channel.

Kept apart from the pika session (hub/broker/amqp.py) so the tag arithmetic is tested without a broker.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas import OmnihubError

# Structured content mode of the CloudEvents AMQP binding: the body is the whole envelope, and this
# media type is how the binding says so (binary mode would carry the data's own type instead).
CLOUDEVENTS_JSON = "application/cloudevents+json"


class BrokerUnavailable(OmnihubError):
    """The broker could not take the messages: no connection, a closed channel, a nack, or no
    confirm in time. Anything unconfirmed must be published again."""


class InvalidMessage(OmnihubError, ValueError):
    """A message pika cannot encode (a routing key or message id over 255 bytes, a body that is not
    bytes, a header value AMQP has no type for). Publishing it again fails again: set it aside.
    Messages of the batch before it have been published; none after it."""

    def __init__(self, text: str, message_id: str) -> None:
        super().__init__(text)
        self.message_id = message_id


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    routing_key: str
    body: bytes
    message_id: str  # the CloudEvents id; consumers dedupe on it
    content_type: str = CLOUDEVENTS_JSON
    headers: Mapping[str, Any] | None = None
    timestamp: int | None = None  # unix seconds; None means "when the batch is written"


@dataclass
class PublishOutcome:
    returned: list[str] = field(default_factory=list)  # message ids the broker could not route


class _Batch:
    """One publish_batch call: how many of its messages still await a confirm."""

    __slots__ = ("messages", "future", "pending", "sealed", "first_tag", "returned", "reply_texts", "_ids")

    def __init__(self, messages: Sequence[OutgoingMessage], future: asyncio.Future[None]) -> None:
        self.messages = messages
        self.future = future
        self.pending = 0
        self.sealed = False  # every message written; only then may pending == 0 settle it
        self.first_tag = 0
        self.returned: list[str] = []
        self.reply_texts: set[str] = set()
        self._ids: set[str] | None = None

    def contains(self, message_id: str) -> bool:
        # Built on the first return only: returns are rare, and when an exchange has no queue at all
        # every message comes back, so a linear scan per return would be quadratic.
        if self._ids is None:
            self._ids = {m.message_id for m in self.messages}
        return message_id in self._ids

    def settle_if_done(self) -> None:
        if self.pending == 0 and self.sealed and not self.future.done():
            self.future.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class ConfirmTracker:
    """Delivery-tag bookkeeping of one confirm-mode channel.

    Tags start at 1 when confirm mode is enabled and count every publish on the channel. The broker
    confirms with single or `multiple` (all tags <= N) acks and nacks, singles possibly out of order.
    Outstanding tags sit in an OrderedDict in tag order, so a multiple confirm pops from the front
    and a single one deletes by key, both O(1) per message.
    """

    __slots__ = ("next_tag", "_outstanding")

    def __init__(self) -> None:
        self.next_tag = 1
        self._outstanding: collections.OrderedDict[int, _Batch] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._outstanding)

    def add_many(self, batch: _Batch, count: int) -> None:
        """Record `count` messages of `batch` just written, with consecutive tags."""
        tag = self.next_tag
        self.next_tag = tag + count
        self._outstanding.update(zip(range(tag, tag + count), itertools.repeat(batch)))
        batch.pending += count

    def _take(self, tag: int, multiple: bool) -> list[tuple[int, _Batch]]:
        outstanding = self._outstanding
        if not multiple:
            batch = outstanding.pop(tag, None)
            return [] if batch is None else [(tag, batch)]
        taken = []
        while outstanding:
            first = next(iter(outstanding))
            if first > tag:
                break
            taken.append(outstanding.popitem(last=False))
        return taken

    def ack(self, tag: int, multiple: bool) -> None:
        for _, batch in self._take(tag, multiple):
            batch.pending -= 1
            batch.settle_if_done()

    def nack(self, tag: int, multiple: bool) -> list[tuple[int, _Batch]]:
        """Fail the batches owning the nacked tags; returns (tag, batch) pairs for the log."""
        taken = self._take(tag, multiple)
        for t, batch in taken:
            batch.pending -= 1
            index = t - batch.first_tag
            message_id = batch.messages[index].message_id if 0 <= index < len(batch.messages) else "?"
            batch.fail(BrokerUnavailable(f"broker nacked message {message_id} (delivery tag {t})"))
        return taken

    def fail_all(self, exc: BrokerUnavailable) -> int:
        batches = {id(b): b for b in self._outstanding.values()}
        count = len(self._outstanding)
        self._outstanding.clear()
        for batch in batches.values():
            batch.fail(exc)
        return count
