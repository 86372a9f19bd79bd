"""Writing a batch on the publisher's confirm channel and settling it: the messages go out in
chunks (waiting while the broker blocks the connection), each takes a delivery tag, and the broker's
acks, nacks and returns settle the batch that owns them; `wait_confirmed` waits for that.

A mixin of the session (amqp_session.py), which owns the connection, the channel and the state
read here; its host provides `is_open`, `fail()`, `close_connection()` and `_log_extra()`. Kept apart
because this is the per-message traffic of publisher confirms, while the session is about opening,
failing and closing; the tag arithmetic itself is in confirms.py.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

from pika import spec
from pika.exceptions import AMQPChannelError, AMQPConnectionError, AMQPError

from hub.broker.confirms import BrokerUnavailable, ConfirmTracker, InvalidMessage, _Batch

# The publisher's one logger, shared by its modules.
log = logging.getLogger("hub.broker.amqp")

APP_ID = "omnihub"
PERSISTENT = 2
# Messages written between two returns to the loop: lets the socket drain and acks arrive while a
# large batch is being written, without paying a loop iteration per message.
_WRITE_CHUNK = 256


class _BatchWrites:
    """Batches on the wire and their confirms, for _Session."""

    # Set by _Session.__init__ and its callbacks.
    exchange: str
    loop: asyncio.AbstractEventLoop
    tracker: ConfirmTracker
    batches: collections.deque[_Batch]
    failure: BrokerUnavailable | None
    blocked: bool
    unblocked: asyncio.Event
    unblocked_at: float
    channel: Any

    # --- broker notifications: confirms and returns --------------------------------------------

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if isinstance(method, spec.Basic.Ack):
            self.tracker.ack(method.delivery_tag, method.multiple)
        else:
            for tag, _batch in self.tracker.nack(method.delivery_tag, method.multiple):
                log.warning("broker nacked a message", extra=self._log_extra(delivery_tag=tag))
        while self.batches and self.batches[0].future.done():
            self.batches.popleft()

    def _on_return(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        message_id = properties.message_id
        # One line per message at INFO; publish_batch sums them up at WARNING, since an exchange
        # with no queue bound returns every message of every batch.
        log.info(
            "broker returned an unroutable message: %s %s",
            method.reply_code,
            method.reply_text,
            extra=self._log_extra(
                routing_key=method.routing_key,
                message_id=message_id,
                reply_code=method.reply_code,
                reply_text=method.reply_text,
            ),
        )
        # A return precedes its message's ack, so the owning batch is still unsettled.
        for batch in self.batches:
            if not batch.future.done() and batch.contains(message_id):
                batch.returned.append(message_id)
                batch.reply_texts.add(f"{method.reply_code} {method.reply_text}")
                return
        log.warning(
            "returned message matches no batch in flight", extra=self._log_extra(message_id=message_id)
        )

    # --- publishing ----------------------------------------------------------------------------

    def check(self) -> None:
        if self.failure is not None:
            raise self.failure
        if not self.is_open:
            raise BrokerUnavailable("not connected to the broker")

    async def write(self, batch: _Batch) -> None:
        """Write every message of the batch; the caller holds the write lock."""
        self.batches.append(batch)
        batch.first_tag = self.tracker.next_tag
        publish = self.channel.basic_publish
        exchange = self.exchange
        now = int(time.time())
        messages = batch.messages
        start = written = 0
        try:
            for start in range(0, len(messages), _WRITE_CHUNK):
                if start:
                    await asyncio.sleep(0)
                while self.blocked:  # the broker reads nothing while blocked; stop adding to the buffer
                    await self.unblocked.wait()
                self.check()
                written = 0
                try:
                    for m in messages[start : start + _WRITE_CHUNK]:
                        props = spec.BasicProperties(
                            content_type=m.content_type,
                            delivery_mode=PERSISTENT,
                            message_id=m.message_id,
                            timestamp=now if m.timestamp is None else m.timestamp,
                            app_id=APP_ID,
                            headers=None if m.headers is None else dict(m.headers),
                        )
                        publish(exchange, m.routing_key, m.body, props, True)
                        written += 1
                finally:
                    # Whatever went out took a tag, even if a later message raised: the count
                    # must match the broker's or every later confirm lands on the wrong batch.
                    self.tracker.add_many(batch, written)
        except (AMQPConnectionError, AMQPChannelError) as exc:
            self.fail(BrokerUnavailable(f"publish failed: {exc!r}"))
            self.close_connection()
            raise self.failure from exc  # type: ignore[misc]
        except (AMQPError, TypeError, ValueError) as exc:
            # pika refused to encode this message; nothing of it went out and the channel is fine.
            # Retrying would fail the same way, so this is not BrokerUnavailable.
            bad = messages[start + written]
            text = f"message {bad.message_id!r} cannot be published: {exc!r}"
            raise InvalidMessage(text, bad.message_id) from exc
        batch.sealed = True
        batch.settle_if_done()

    async def wait_confirmed(self, batch: _Batch, timeout: float) -> None:
        """Wait for the batch's confirms. The clock does not run while the broker holds the connection
        blocked (an alarm is not a lost confirm); ConnectionParameters.blocked_connection_timeout
        bounds that wait instead."""
        fut = batch.future
        start = self.loop.time()
        while not fut.done():
            deadline = max(start, self.unblocked_at) + timeout
            remaining = deadline - self.loop.time()
            if self.blocked:
                remaining = timeout
            elif remaining <= 0:
                exc = BrokerUnavailable(f"no broker confirm within {timeout:g}s")
                # Confirms may still come for a channel this slow; start over on a fresh one rather
                # than keep tags that may never settle.
                self.fail(exc)
                self.close_connection()
                break
            await asyncio.wait((fut,), timeout=remaining)
        fut.result()  # raises the batch's BrokerUnavailable
