"""The events exchange of one test and a queue of this run bound to it."""

from __future__ import annotations

import pytest

from tests.hub.amqp_consumer import BoundQueue


@pytest.fixture
def exchange(run_prefix, request):
    return f"{run_prefix}.events.{request.node.name[-40:]}"


@pytest.fixture
def received_queue(amqp_url, exchange, run_prefix):
    queue = BoundQueue(amqp_url, exchange, "interaction.received.#", run_prefix)
    queue.declare()
    yield queue
    queue.delete()
