"""GET /v1/outbox: the outbox's rows by routing key, waiting and published, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from hub import keys
from hub.broker import outbox_store as repo
from hub.storage.engine import writer
from hub.storage.models import outbox
from tests.hub.payloads import sms


async def test_counts_waiting_and_published_events_by_routing_key(client):
    assert (await client.post("/v1/interactions", json=sms("010-1234-5678"))).status == 201
    assert (await client.post("/v1/interactions", json=sms("010-1234-5678"))).status == 201
    async with writer(client.app[keys.ENGINE]).begin() as conn:  # the hub's own writers hold SQLite's lock
        first = (await conn.execute(select(outbox.c.seq).where(outbox.c.type == "profile.created"))).scalar_one()
        await repo.mark_published(conn, [first], [], at=datetime.now(UTC))
    body = await (await client.get("/v1/outbox")).json()
    assert body["routing_keys"] == {
        "interaction.received.sms": {"pending": 2, "published": 0},
        "profile.created": {"pending": 0, "published": 1},
    }
    assert body["pending"] == 2
    assert body["exchange"] == "omnihub.events"
    assert body["broker"]["state"] == "disabled"


async def test_an_empty_outbox(client):
    body = await (await client.get("/v1/outbox")).json()
    assert body["pending"] == 0 and body["routing_keys"] == {}
