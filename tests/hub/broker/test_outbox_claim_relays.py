"""Several outbox relays on one database and the real RabbitMQ broker (issue 15): each event reaches
the exchange once, a profile's events in order, and a stopped hub's leased events move on."""

from __future__ import annotations

import collections
import contextlib
import pytest
from sqlalchemy import update

from hub.broker.relay import OutboxRelay
from hub.storage.engine import writer
from hub.storage.models import outbox
from tests.hub.amqp_consumer import BoundQueue
from tests.hub.broker.test_outbox_claim import LONG_AGO, add_events, lease

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def exchange(run_prefix, request):
    return f"{run_prefix}.events.{request.node.name[-40:]}"


@pytest.fixture
def events_queue(amqp_url, exchange, run_prefix):
    queue = BoundQueue(amqp_url, exchange, "#", run_prefix)
    queue.declare()
    yield queue
    queue.delete()


@contextlib.asynccontextmanager
async def relays(engine, amqp_url: str, exchange: str, count: int):
    started = [OutboxRelay(engine, amqp_url=amqp_url, exchange=exchange, batch_size=40, poll_interval_s=0.05)
               for _ in range(count)]
    for relay in started:
        await relay.start()
    try:
        yield started
    finally:
        for relay in started:
            await relay.stop()


def subjects_in_arrival_order(got) -> dict[str, list[int]]:
    order: dict[str, list[int]] = collections.defaultdict(list)
    for _props, event, _key in got:
        order[event["subject"]].append(event["data"]["n"])
    return order


async def test_three_relays_publish_each_event_once_and_each_profile_in_order(engine, amqp_url, exchange,
                                                                               events_queue):
    async with relays(engine, amqp_url, exchange, 3) as running:
        for start in range(0, 900, 150):  # written while the relays run, as hubs' ingest would
            await add_events(engine, *(f"profile-{n % 97}" for n in range(start, start + 150)), first=start)
            for relay in running:
                relay.notify()
        got = await events_queue.adrain(900, timeout=60)
        assert len(got) == 900
        extra = await events_queue.adrain(1, timeout=0.5)
    assert extra == []
    ids = [props.message_id for props, _, _ in got]
    assert len(set(ids)) == 900  # none twice
    assert sum(relay.published for relay in running) == 900
    for seqs in subjects_in_arrival_order(got).values():
        assert seqs == sorted(seqs)


async def test_events_leased_by_a_stopped_hub_wait_for_its_lease_then_flow_in_order(
    engine, amqp_url, exchange, events_queue
):
    await add_events(engine, "P", "P")
    assert len(await lease(engine, "dead-hub", limit=1)) == 1  # P's first event; then the hub was killed
    await add_events(engine, "P", "Q", "Q", first=2)
    async with relays(engine, amqp_url, exchange, 1):
        got = await events_queue.adrain(2)
        # Q's events flow; P's later ones are not sent ahead of the one the stopped hub holds.
        assert [event["subject"] for _, event, _ in got] == ["Q", "Q"]
        async with writer(engine).begin() as conn:  # its lease runs out
            await conn.execute(update(outbox).where(outbox.c.claimed_by == "dead-hub")
                               .values(claimed_until=LONG_AGO))
        got += await events_queue.adrain(3)
    assert subjects_in_arrival_order(got)["P"] == [0, 1, 2]
