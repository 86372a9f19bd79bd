"""The RabbitMQ topology of the back-office integration (DESIGN section 5), declared idempotently.

    omnihub.events   topic  <- the outbox relay publishes every event here
    omnihub.commands topic  -> queue omnihub.commands (bound '#'), consumed by the hub
    omnihub.dead     topic  -> queue omnihub.dead (bound '#'): dead letters, routing key = the
                               queue the message died in

Every consuming queue (the hub's command queue, each worker's queue) is durable and names
omnihub.dead as its dead-letter exchange, with its own name as the dead-letter routing key, so
what the broker itself dead-letters (a quorum queue's delivery limit, a reject) lands in the same
place as what the consumers dead-letter on purpose. Declarations are plain pika calls on a
BlockingChannel: the hub runs them in a thread at start, the workers and `omnihub dlq` inline.
An operator who pre-declares the same names and arguments (see README) can switch this off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pika

from hub.settings import QueueSettings, Settings

ALL_KEYS = "#"


@dataclass(frozen=True)
class Topology:
    events_exchange: str = "omnihub.events"
    commands_exchange: str = "omnihub.commands"
    commands_queue: str = "omnihub.commands"
    dead_exchange: str = "omnihub.dead"
    dead_queue: str = "omnihub.dead"
    queues: QueueSettings = field(default_factory=QueueSettings)

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        b = settings.backoffice
        return cls(settings.events_exchange, b.commands_exchange, b.commands_queue, b.dead_exchange,
                   b.dead_queue, b.queues)

    def queue_arguments(self, queue: str) -> dict[str, Any]:
        """Arguments of a consuming queue: dead letters to omnihub.dead, keyed by the queue's name."""
        args: dict[str, Any] = {"x-dead-letter-exchange": self.dead_exchange, "x-dead-letter-routing-key": queue}
        if self.queues.type == "quorum":
            args["x-queue-type"] = "quorum"
            if self.queues.delivery_limit is not None:
                args["x-delivery-limit"] = self.queues.delivery_limit
            if self.queues.at_least_once_dead_lettering:
                # At-least-once dead-lettering needs the queue to refuse publishes when full rather
                # than drop its head (RabbitMQ docs, "Quorum Queues: dead lettering").
                args["x-dead-letter-strategy"] = "at-least-once"
                args["x-overflow"] = "reject-publish"
        return args

    def dead_queue_arguments(self) -> dict[str, Any]:
        # No dead-letter exchange of its own (a dead letter has nowhere further to go) and no
        # delivery limit: `omnihub dlq list` reads and returns messages any number of times.
        return {"x-queue-type": "quorum"} if self.queues.type == "quorum" else {}


def declare_exchanges(channel: Any, t: Topology) -> None:
    for name in (t.events_exchange, t.commands_exchange, t.dead_exchange):
        channel.exchange_declare(name, exchange_type="topic", durable=True)
    channel.queue_declare(t.dead_queue, durable=True, arguments=t.dead_queue_arguments())
    channel.queue_bind(t.dead_queue, t.dead_exchange, ALL_KEYS)


def declare_consumer_queue(channel: Any, t: Topology, queue: str, exchange: str, bindings: Iterable[str]) -> None:
    channel.queue_declare(queue, durable=True, arguments=t.queue_arguments(queue))
    for key in bindings:
        channel.queue_bind(queue, exchange, key)


def declare_hub(channel: Any, t: Topology) -> None:
    """What the hub owns: the three exchanges, the dead queue and the command queue. Bound '#' so a
    command with an unknown name still reaches the hub and is dead-lettered with the reason."""
    declare_exchanges(channel, t)
    declare_consumer_queue(channel, t, t.commands_queue, t.commands_exchange, [ALL_KEYS])


def declare_hub_blocking(url: str, t: Topology) -> None:
    """Open a short-lived connection and declare the hub's topology (run in a thread by the hub)."""
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = params.stack_timeout = 5
    connection = pika.BlockingConnection(params)
    try:
        declare_hub(connection.channel(), t)
    finally:
        connection.close()
