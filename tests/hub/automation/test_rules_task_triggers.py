"""Rules on the router's task triggers: `task.sla_breached` and `task.abandoned` run in the hub, their
effects stored with the flush that persisted the task event (issue 5), SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from hub import keys
from hub.app import create_app
from hub.storage.models import interactions, outbox
from hub.storage.routing_models import tasks
from hub.storage.rules_models import scheduled_actions
from tests.hub.assignment.test_routing_flow import route_from_metadata, routed
from tests.hub.conftest import eventually

# Fixed clock (tests/conftest.py): SLA breaches and escalations are due by the clock.
pytestmark = pytest.mark.clock

RULES = """\
rules:
  - name: breach-to-overflow
    on: task.sla_breached
    when:
      all:
        - {field: task.queue, op: eq, value: support}
    then:
      - publish: {event_type: ops.sla.breached}
      - escalate: {queue: overflow}
      - add_tag: breached
      - auto_reply: sorry-for-the-wait
  - name: abandoned-alert
    on: task.abandoned
    then:
      - publish: ops.task.abandoned
"""

QUEUES = [{"name": "support", "sla_s": 0.2}, {"name": "overflow", "sla_s": 60}, {"name": "sales", "sla_s": 60}]
AGENTS = [{"id": "alice", "display_name": "Alice"}]  # never available: tasks wait


@pytest.fixture
def rules_dir(tmp_path):
    path = tmp_path / "rules"
    path.mkdir()
    (path / "main.yaml").write_text(RULES, encoding="utf-8")
    return path


@pytest.fixture
async def client(aiohttp_client, make_settings, rules_dir):
    routing = {"queues": QUEUES, "agents": AGENTS, "poll_interval_s": 0.05}
    client = await aiohttp_client(create_app(make_settings(rules_dir=str(rules_dir), routing=routing)))
    client.app[keys.PIPELINE].steps.insert(0, route_from_metadata)
    await client.app[keys.ROUTER].active.wait()
    return client


async def _events(client, event_type: str) -> list[dict]:
    async with client.app[keys.ENGINE].connect() as conn:
        rows = await conn.execute(select(outbox.c.body).where(outbox.c.type == event_type).order_by(outbox.c.seq))
        return [json.loads(body) for (body,) in rows]


async def _task(client, task_id: str):
    async with client.app[keys.ENGINE].connect() as conn:
        return (await conn.execute(select(tasks).where(tasks.c.id == uuid.UUID(task_id)))).one()


async def test_sla_breach_rule_publishes_and_escalates_to_overflow(client):
    task_id = await routed(client, "support", text_="anyone there?")

    async def moved():
        row = await _task(client, task_id)
        return row if row.queue == "overflow" and row.state == "waiting" else None

    row = await eventually(moved, timeout=10)
    assert row.sla_breached
    published = await _events(client, "ops.sla.breached")
    assert len(published) == 1
    data = published[0]["data"]
    assert (data["id"], data["queue"], data["channel"]) == (task_id, "support", "sms")
    assert data["waited"] >= 0.2 and data["trigger"] == "task.sla_breached"
    assert published[0]["subject"] == data["profile_id"]
    # the router's own transfer, persisted and published like any other
    transferred = await _events(client, "task.transferred")
    assert [(e["data"]["id"], e["data"]["queue"]) for e in transferred] == [(task_id, "overflow")]
    # the router's live view agrees
    assert client.app[keys.ROUTER].require().task(task_id).queue == "overflow"
    # add_tag lands on the stored interaction; auto_reply waits in scheduled_actions
    async with client.app[keys.ENGINE].connect() as conn:
        doc = json.loads((await conn.execute(select(interactions.c.document)
                                             .where(interactions.c.id == uuid.UUID(row.interaction_id.hex)))).scalar())
        actions = (await conn.execute(select(scheduled_actions.c.kind, scheduled_actions.c.payload))).all()
    assert "breached" in doc.get("tags", [])
    assert [(k, json.loads(p)["template"]) for k, p in actions] == [("auto_reply", "sorry-for-the-wait")]


async def test_abandon_fires_the_task_abandoned_rule(client):
    task_id = await routed(client, "sales")
    await eventually(lambda: _state_is(client, task_id, "waiting"), timeout=10)  # picked up by the router
    resp = await client.post(f"/v1/tasks/{task_id}/abandon")
    assert resp.status == 200, await resp.text()
    # the rule's event was committed with the abandon's flush, before the API answered
    published = await _events(client, "ops.task.abandoned")
    assert [(e["data"]["id"], e["data"]["state"], e["data"]["queue"]) for e in published] == [
        (task_id, "abandoned", "sales")]
    assert published[0]["data"]["waited"] is not None
    assert (await _task(client, task_id)).state == "abandoned"
    assert await _events(client, "ops.sla.breached") == []  # sales' SLA is 60 s


async def test_without_rules_task_triggers_do_nothing(aiohttp_client, make_settings):
    routing = {"queues": QUEUES, "agents": AGENTS, "poll_interval_s": 0.05}
    client = await aiohttp_client(create_app(make_settings(routing=routing)))
    client.app[keys.PIPELINE].steps.insert(0, route_from_metadata)
    await client.app[keys.ROUTER].active.wait()
    task_id = await routed(client, "support")
    await eventually(lambda: _breached(client, task_id), timeout=10)
    assert (await _task(client, task_id)).queue == "support"
    assert await _events(client, "ops.sla.breached") == []


async def _breached(client, task_id: str) -> bool:
    return bool((await _task(client, task_id)).sla_breached)


async def _state_is(client, task_id: str, state: str) -> bool:
    return (await _task(client, task_id)).state == state
