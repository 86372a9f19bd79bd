"""Timers and daily schedules, driven by a fake clock, across restarts (issue 5)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from hub import keys
from hub.app import create_app
from hub.automation import scheduler as scheduler_module
from hub.automation.scheduler import Scheduler
from hub.ids import new_id
from hub.storage.engine import create_engine
from hub.storage.migrate import upgrade
from hub.storage.models import outbox, profiles
from hub.storage.rules_models import schedule_runs, scheduled_actions, timers
from rules import loads_ruleset
from tests.hub import payloads

RULES = """\
timezone: Asia/Seoul
rules:
  - name: wait-reply
    on: interaction.received
    when: {field: interaction.channel, op: eq, value: sms}
    then:
      - start_timer:
          name: no-reply
          after: 10m
          cancel_on: [interaction.sent]
          unless: {field: profile.tier, op: eq, value: internal}
          then:
            - escalate: {queue: supervisors}
            - add_tag: unanswered
            - publish: sla.warning
  - name: birthday-greeting
    on: {schedule: "daily 09:00"}
    when:
      all:
        - {field: profile.birthday, op: is_today}
    then:
      - send_message: {template: birthday, channel: auto, purpose: marketing}
"""

SEOUL_8AM = datetime(2026, 11, 23, 8, 0, tzinfo=UTC) - timedelta(hours=9)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def start_hub(aiohttp_client, make_settings, tmp_path):
    path = tmp_path / "rules"
    path.mkdir()
    (path / "main.yaml").write_text(RULES, encoding="utf-8")

    async def start(clock: FakeClock):
        app = create_app(make_settings(rules_dir=str(path)))
        app[keys.CLOCK] = clock
        return await aiohttp_client(app)

    return start


async def _rows(client, table, *where):
    async with client.app[keys.ENGINE].connect() as conn:
        return (await conn.execute(select(table).where(*where))).mappings().all()


def _outbound(phone: str, conversation: str) -> dict:
    return {"channel": "sms", "direction": "outbound", "kind": "message", "provider": "acme-gateway",
            "provider_ref": f"OUT-{uuid.uuid4().hex[:8]}", "occurred_at": "2026-11-23T10:01:00+09:00",
            "recipients": [{"identifiers": [{"type": "phone", "value": phone}]}],
            "content": {"text": "확인했습니다"}, "conversation_key": conversation}


# The scheduler runs on the FakeClock; the hub's ingest (timers' due times) on the fixed clock.
@pytest.mark.clock
async def test_timer_fires_once_after_its_delay_and_across_a_restart(start_hub):
    clock = FakeClock(datetime.now(UTC))
    hub = await start_hub(clock)
    created = await (await hub.post("/v1/interactions", json=payloads.sms(conversation_key="c-1"))).json()
    clock.now += timedelta(minutes=9)
    await hub.app[keys.SCHEDULER].tick()
    assert [t["state"] for t in await _rows(hub, timers)] == ["pending"]  # not yet due
    await hub.close()  # restart: the pending timer lives in the database

    clock.now += timedelta(minutes=2)
    hub = await start_hub(clock)
    await hub.app[keys.SCHEDULER].tick()
    await hub.app[keys.SCHEDULER].tick()
    (timer,) = await _rows(hub, timers)
    assert (timer["state"], timer["reason"]) == ("fired", "fired")
    escalations = await _rows(hub, scheduled_actions, scheduled_actions.c.kind == "escalate")
    assert [json.loads(e["payload"])["queue"] for e in escalations] == ["supervisors"]
    assert len(await _rows(hub, outbox, outbox.c.type == "sla.warning")) == 1
    doc = await (await hub.get(f"/v1/interactions/{created['id']}")).json()
    assert doc["tags"] == ["unanswered"]
    await hub.close()

    hub = await start_hub(clock)  # a second restart fires nothing again
    await hub.app[keys.SCHEDULER].tick()
    assert len(await _rows(hub, outbox, outbox.c.type == "sla.warning")) == 1
    assert len(await _rows(hub, scheduled_actions, scheduled_actions.c.kind == "escalate")) == 1


@pytest.mark.clock
async def test_agent_reply_cancels_the_timer_and_unless_ends_it(start_hub):
    clock = FakeClock(datetime.now(UTC))
    hub = await start_hub(clock)
    await hub.post("/v1/interactions", json=payloads.sms("010-1111-2222", conversation_key="c-1"))
    internal = await (await hub.post("/v1/interactions", json=payloads.sms("010-3333-4444"))).json()
    async with hub.app[keys.ENGINE].begin() as conn:
        await conn.execute(update(profiles).where(profiles.c.id == uuid.UUID(internal["profile_id"]))
                           .values(attributes=json.dumps({"tier": "internal"})))
    reply = await hub.post("/v1/interactions", json=_outbound("010-1111-2222", "c-1"))
    assert reply.status == 201
    by_profile = {str(t["profile_id"]): t for t in await _rows(hub, timers)}
    replied = next(t for pid, t in by_profile.items() if pid != internal["profile_id"])
    assert (replied["state"], replied["reason"]) == ("cancelled", "cancelled by interaction.sent")

    clock.now += timedelta(minutes=11)
    report = await hub.app[keys.SCHEDULER].tick()
    assert report.timers_fired == 0
    ended = (await _rows(hub, timers, timers.c.profile_id == uuid.UUID(internal["profile_id"])))[0]
    assert (ended["state"], ended["reason"]) == ("cancelled", "unless held")
    assert await _rows(hub, outbox, outbox.c.type == "sla.warning") == []
    assert await _rows(hub, scheduled_actions, scheduled_actions.c.kind == "escalate") == []


@pytest.mark.clock
async def test_birthday_schedule_runs_once_per_profile_per_day(start_hub):
    clock = FakeClock(SEOUL_8AM)
    hub = await start_hub(clock)
    birthdays = {"010-1000-0001": "1990-11-23", "010-1000-0002": "1985-11-23", "010-1000-0003": "1990-11-24"}
    pids = {}
    for phone, birthday in birthdays.items():
        pid = (await (await hub.post("/v1/interactions", json=payloads.sms(phone))).json())["profile_id"]
        pids[pid] = birthday
        async with hub.app[keys.ENGINE].begin() as conn:
            await conn.execute(update(profiles).where(profiles.c.id == uuid.UUID(pid))
                               .values(attributes=json.dumps({"birthday": birthday})))
    scheduler = hub.app[keys.SCHEDULER]
    assert (await scheduler.tick()).scans == []  # 08:00 in Seoul: not yet

    clock.now = SEOUL_8AM + timedelta(hours=1, seconds=5)
    await scheduler.tick()
    await scheduler.tick()  # run twice: nothing more

    def greeted(rows):
        return sorted(str(r["profile_id"]) for r in rows if r["kind"] == "send_message")

    today = sorted(pid for pid, b in pids.items() if b.endswith("11-23"))
    assert greeted(await _rows(hub, scheduled_actions)) == today
    await hub.close()

    hub = await start_hub(clock)  # restart within the day: the catch-up scan skips who is done
    await hub.app[keys.SCHEDULER].tick()
    assert list(hub.app[keys.SCHEDULER].last_scan.values()) == [SEOUL_8AM + timedelta(hours=1)]
    assert greeted(await _rows(hub, scheduled_actions)) == today
    assert len(await _rows(hub, schedule_runs)) == 2

    clock.now += timedelta(days=1)  # the next day greets the 24 November birthday
    report = await hub.app[keys.SCHEDULER].tick()
    tomorrow = [pid for pid, b in pids.items() if b.endswith("11-24")]
    assert report.schedule_runs == 1
    assert greeted(await _rows(hub, scheduled_actions)) == sorted(today + tomorrow)
    (row,) = await _rows(hub, scheduled_actions, scheduled_actions.c.profile_id == uuid.UUID(tomorrow[0]),
                         scheduled_actions.c.kind == "send_message")
    assert json.loads(row["payload"])["template"] == "birthday"
    assert row["due_at"] == SEOUL_8AM + timedelta(days=1, hours=1)  # the 09:00 Seoul run, not the tick


BIRTHDAY_ONLY = """\
timezone: Asia/Seoul
rules:
  - name: birthday-greeting
    on: {schedule: "daily 09:00"}
    when: {field: profile.birthday, op: is_today}
    then:
      - send_message: {template: birthday, channel: auto, purpose: marketing}
"""
CUSTOMERS = 10_000


async def test_ten_thousand_birthdays_get_one_greeting_each_across_a_restart_mid_scan(database_url, monkeypatch):
    """Issue 5: the scan is stopped after a few pages, a new scheduler resumes on the same database."""
    ruleset = loads_ruleset(BIRTHDAY_ONLY)
    clock = FakeClock(SEOUL_8AM + timedelta(hours=1, seconds=5))  # just past 09:00 in Seoul
    engine = create_engine(database_url)
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(insert(profiles), [
            {"id": new_id(), "created_at": clock.now, "updated_at": clock.now,
             "attributes": json.dumps({"birthday": f"{1950 + i % 50}-11-23"})}
            for i in range(CUSTOMERS)
        ])

    async def count(eng, *columns):
        async with eng.connect() as conn:
            return (await conn.execute(select(*columns))).one()

    # Stop the first scheduler as soon as its third page has been recorded: its task is cancelled
    # wherever it is then (committing page 3 or reading page 4), as a stopped hub would be.
    pages, third_page = 0, asyncio.Event()
    record_runs = scheduler_module._record_runs

    def counting(*args, **kwargs):
        nonlocal pages
        pages += 1
        if pages == 3:
            third_page.set()
        return record_runs(*args, **kwargs)

    monkeypatch.setattr(scheduler_module, "_record_runs", counting)
    first = Scheduler(engine, lambda: ruleset, clock=clock, poll_interval_s=0.01, batch=500)
    await first.start()
    await asyncio.wait_for(third_page.wait(), timeout=30)
    await first.stop()
    await engine.dispose()
    engine = create_engine(database_url)  # a new process on the same database
    (done,) = await count(engine, func.count(schedule_runs.c.id))
    assert 0 < done < CUSTOMERS, done  # stopped mid-scan

    second = Scheduler(engine, lambda: ruleset, clock=clock, batch=500)
    report = await second.tick()
    assert report.schedule_runs == CUSTOMERS - done
    assert (await second.tick()).schedule_runs == 0  # and nothing more on the next tick
    sends, greeted = await count(
        engine, func.count(scheduled_actions.c.id), func.count(scheduled_actions.c.profile_id.distinct()))
    runs, run_profiles = await count(
        engine, func.count(schedule_runs.c.id), func.count(schedule_runs.c.profile_id.distinct()))
    await engine.dispose()
    assert (sends, greeted) == (CUSTOMERS, CUSTOMERS)  # exactly one greeting per profile
    assert (runs, run_profiles) == (CUSTOMERS, CUSTOMERS)


@pytest.mark.parametrize("conflicts", [1, 2])
async def test_a_page_another_hub_recorded_first_is_tried_once_more(database_url, monkeypatch, conflicts):
    """Another hub recording some of a page between our read and write makes the insert fail: the
    page is read again and written once more; a second conflict in a row is raised."""
    ruleset = loads_ruleset(BIRTHDAY_ONLY)
    clock = FakeClock(SEOUL_8AM + timedelta(hours=1, seconds=5))
    engine = create_engine(database_url)
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(insert(profiles), [
            {"id": new_id(), "created_at": clock.now, "updated_at": clock.now,
             "attributes": json.dumps({"birthday": "1990-11-23"})} for _ in range(3)])
    calls = 0
    record_runs = scheduler_module._record_runs

    def racing(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls <= conflicts:
            raise IntegrityError("INSERT INTO schedule_runs ...", {}, Exception("duplicate key value"))
        return record_runs(*args, **kwargs)

    monkeypatch.setattr(scheduler_module, "_record_runs", racing)
    scheduler = Scheduler(engine, lambda: ruleset, clock=clock)
    try:
        if conflicts == 1:
            assert (await scheduler.tick()).schedule_runs == 3
        else:
            with pytest.raises(IntegrityError):
                await scheduler.tick()
        async with engine.connect() as conn:
            (runs,) = (await conn.execute(select(func.count(schedule_runs.c.id)))).one()
    finally:
        await engine.dispose()
    assert calls == 2
    assert runs == (3 if conflicts == 1 else 0)
