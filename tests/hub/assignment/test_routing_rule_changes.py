"""Rules on task triggers change the live task: the shipped `sla-breach-escalates` example rule
(`escalate: {skills: [senior]}`, `set_priority: 50`) makes a stuck task reach a senior agent, and the
change is persisted and published like any other transition (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from hub import keys
from hub.app import create_app
from hub.storage.routing_models import task_events, tasks
from rules import EXAMPLES_DIR
from tests.hub.assignment.test_routing_flow import events_of, presence, route_from_metadata, routed
from tests.hub.conftest import eventually

# Korean speakers are all away, so a task for `support` waits until its SLA is breached.
QUEUES = [{"name": "support", "required_skills": {"korean": 1}, "sla_s": 0.3}]
AGENTS = [{"id": "kim", "display_name": "Kim", "skills": {"korean": 2}},
          {"id": "sam", "display_name": "Sam", "skills": {"senior": 1}}]


@pytest.fixture
def rules_dir(tmp_path):
    """Only the shipped example rule, its text cut from rules/examples/default.yaml as it is."""
    shipped = (EXAMPLES_DIR / "default.yaml").read_text(encoding="utf-8")
    start = shipped.index("  - name: sla-breach-escalates\n")
    end = shipped.find("\n  - name:", start + 1)
    path = tmp_path / "rules"
    path.mkdir()
    (path / "main.yaml").write_text("rules:\n" + shipped[start:end if end > 0 else None], encoding="utf-8")
    return path


async def _row(client, task_id: str):
    async with client.app[keys.ENGINE].connect() as conn:
        return (await conn.execute(select(tasks).where(tasks.c.id == uuid.UUID(task_id)))).one()


@pytest.mark.clock
async def test_sla_breach_escalates_to_senior_skills_and_a_senior_agent_gets_the_task(
        aiohttp_client, make_settings, rules_dir):
    routing = {"queues": QUEUES, "agents": AGENTS, "poll_interval_s": 0.05}
    client = await aiohttp_client(create_app(make_settings(rules_dir=str(rules_dir), routing=routing)))
    client.app[keys.PIPELINE].steps.insert(0, route_from_metadata)
    await client.app[keys.ROUTER].active.wait()
    await presence(client, "sam")  # available, but without Korean: not eligible at first

    task_id = await routed(client, "support", text_="안녕하세요")

    async def offered_to_sam():
        row = await _row(client, task_id)
        return row if (row.state, row.agent_id, row.priority) == ("offered", "sam", 50) else None

    row = await eventually(offered_to_sam, timeout=10)
    assert row.sla_breached and row.queue == "support"
    live = client.app[keys.ROUTER].require().task(task_id)
    assert live.requirements(client.app[keys.ROUTER].require().queues()[0]) == {"senior": 1}

    escalated = await events_of(client, "task.escalated")
    assert [(e["data"]["id"], e["routing_key"]) for e in escalated] == [(task_id, "task.escalated.sms")]
    assert escalated[0]["data"]["event"]["details"] == {
        "reason": "sla-breach-escalates", "skills": {"senior": 1}, "replace_skills": True}
    reprioritized = await events_of(client, "task.reprioritized")
    assert [(e["data"]["id"], e["data"]["priority"]) for e in reprioritized] == [(task_id, 50)]
    async with client.app[keys.ENGINE].connect() as conn:
        kinds = (await conn.execute(select(task_events.c.kind).where(task_events.c.task_id == uuid.UUID(task_id))
                                    .order_by(task_events.c.seq))).scalars().all()
    assert kinds == ["created", "sla_breached", "escalated", "offered", "reprioritized"]

    # Sam takes it; the escalated requirement is in the row, so a restart would route it the same way.
    resp = await client.post(f"/v1/tasks/{task_id}/accept", json={"agent_id": "sam"})
    assert resp.status == 200, await resp.text()
    assert (await _row(client, task_id)).state == "assigned"
