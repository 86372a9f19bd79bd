"""What becomes an agent's task: by default only messages and calls (`routing.kinds`), so a POS sale,
an `omnihub import pos` row, a mail bounce or an auto-reply stays history on the timeline even on a
hub whose default queue takes everything; and a rule's `no_route` keeps one interaction from
routing, over any `route` (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.email.parse import parse
from hub.app import create_app
from tests.adapters.pos_support import SECRET, post, sale
from tests.hub.conftest import count_rows
from tests.hub.ingest.test_pos_import import omnihub
from tests.hub.payloads import sms

ROUTING = {"queues": [{"name": "support", "sla_s": 30}], "default_queue": "support"}
POS = {"pos": {"secret": SECRET, "default_currency": "KRW"}}
EMAIL_CORPUS = Path(__file__).parents[2] / "data" / "email"
RULES = """
rules:
  - name: everything-to-support
    on: interaction.received
    priority: 50
    then: [{route: {queue: support, priority: 5}}]
  - name: newsletter-replies-are-no-work
    on: interaction.received
    priority: 1
    when: {any: [{field: interaction.content.text, op: matches, value: "(?i)unsubscribe|수신거부"}]}
    then: [no_route, {add_tag: newsletter}]
"""


@pytest.fixture
async def hub(aiohttp_client, make_settings, tmp_path):
    settings = make_settings(routing=ROUTING, blob_dir=str(tmp_path / "blobs"), adapters=POS)
    return await aiohttp_client(create_app(settings))


async def ingest(hub, payload: dict) -> dict:
    resp = await hub.post("/v1/interactions", json=payload)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_a_pos_sale_a_bounce_and_an_auto_reply_make_no_task_a_message_does(hub):
    resp = await post(hub, sale("R-100"))  # the POS adapter's webhook, signed as a till signs it
    assert resp.status in (200, 201), await resp.text()
    for name in ("10_bounce_dsn.eml", "11_auto_reply.eml"):  # as the email adapter reads them
        parsed = parse((EMAIL_CORPUS / name).read_bytes(), now=datetime(2026, 11, 29, tzinfo=UTC))
        assert parsed.interaction.kind == "event"
        await ingest(hub, parsed.interaction.model_dump(mode="json", by_alias=True, exclude_none=True))
    assert await count_rows(hub.app, "interactions") == 3
    assert await count_rows(hub.app, "tasks") == 0
    await ingest(hub, sms("010-6200-0001"))  # a customer's message, on the same hub: work
    assert await count_rows(hub.app, "tasks") == 1


async def test_the_kinds_that_route_are_configurable(aiohttp_client, make_settings, tmp_path):
    settings = make_settings(routing={**ROUTING, "kinds": ["message", "call", "transaction"]},
                             blob_dir=str(tmp_path / "blobs"), adapters=POS)
    hub = await aiohttp_client(create_app(settings))
    resp = await post(hub, sale("R-200"))
    assert resp.status in (200, 201), await resp.text()
    assert await count_rows(hub.app, "tasks") == 1
    assert settings.routing.kinds == {"message", "call", "transaction"}


async def test_imported_pos_rows_make_no_task(tmp_path, database_url, hub):
    config = tmp_path / "hub.yaml"
    config.write_text(f"database_url: '{database_url}'\n"
                      "adapters:\n  pos: {secret: '" + SECRET + "', default_currency: KRW}\n"
                      "routing:\n  queues: [{name: support, sla_s: 30}]\n  default_queue: support\n")
    rows = tmp_path / "sales.csv"
    rows.write_text("store,register,receipt,time,total,currency,loyalty_id\n"
                    "S01,1,R-1,2026-11-20T12:00:00+09:00,24000,KRW,LOY-1\n"
                    "S01,1,R-2,2026-11-21T12:00:00+09:00,6000,KRW,LOY-2\n", encoding="utf-8")
    code, out, err = await omnihub(config, "import", "pos", str(rows))
    assert code == 0, (out, err)
    assert await count_rows(hub.app, "interactions") == 2
    assert await count_rows(hub.app, "tasks") == 0


async def test_a_rule_with_no_route_stops_routing_a_message_over_any_route(aiohttp_client, make_settings, tmp_path):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "routing.yaml").write_text(RULES, encoding="utf-8")
    hub = await aiohttp_client(create_app(make_settings(routing=ROUTING, rules_dir=str(rules_dir),
                                                        blob_dir=str(tmp_path / "blobs"))))
    quiet = await ingest(hub, sms("010-6300-0001", text="수신거부 unsubscribe me"))
    assert await count_rows(hub.app, "tasks") == 0
    stored = await (await hub.get(f"/v1/interactions/{quiet['id']}")).json()
    assert "newsletter" in stored["tags"]  # the rule ran; only the routing was held back
    await ingest(hub, sms("010-6300-0002", text="where is my order?"))
    assert await count_rows(hub.app, "tasks") == 1
