"""Rules in the hub: applied at ingest, reloaded safely, dry-run over HTTP (issue 5)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from hub import keys
from hub.app import create_app
from hub.automation.runtime import reload_logged
from hub.cli import main as omnihub
from hub.storage.models import outbox, profiles
from hub.storage.rules_models import rulesets, scheduled_actions, timers
from tests.hub import payloads
from tests.hub.conftest import count_rows
from tests.rules import ten_mistakes

# The DESIGN section 6 examples, plus rules exercising each kind of stored effect.
RULES = """\
timezone: Asia/Seoul
rules:
  - name: vip-first
    on: interaction.received
    priority: 10
    when:
      all:
        - {field: profile.tier, op: eq, value: vip}
        - {field: interaction.channel, op: in, value: [voice, chat, sms]}
    then:
      - route: {queue: vip, priority: 10, owner_first: true}
      - set_priority: 10
      - add_tag: vip
  - name: complaint-to-retention
    on: interaction.received
    when:
      any:
        - {field: interaction.content.text, op: matches, value: "(?i)cancel|refund|해지|환불"}
    then:
      - add_tag: complaint
      - route: {queue: retention, priority: 5}
  - name: big-basket-to-erp
    on: interaction.received
    when:
      all:
        - {field: interaction.channel, op: eq, value: pos}
        - {field: interaction.transaction.total, op: gte, value: 1000000}
    then:
      - publish: erp.basket.large
      - add_segment: high-value
      - set_profile: {tier: gold, attributes.last_big_basket: true}
  - name: sms-ack
    on: interaction.received
    when:
      all:
        - {field: interaction.channel, op: eq, value: sms}
    then:
      - auto_reply: sms-received
"""


def pos(total: int, phone: str = "010-5555-0000") -> dict:
    return {
        "channel": "pos", "direction": "inbound", "kind": "transaction", "provider": "store-17",
        "provider_ref": f"R-{total}-{phone}", "occurred_at": "2026-11-23T10:00:00+09:00",
        "sender": {"identifiers": [{"type": "phone", "value": phone}]},
        "transaction": {"total": str(total), "currency": "KRW", "items": [{"sku": "A1", "unit_price": str(total)}]},
    }


@pytest.fixture
def rules_dir(tmp_path):
    path = tmp_path / "rules"
    path.mkdir()
    (path / "main.yaml").write_text(RULES, encoding="utf-8")
    return path


@pytest.fixture
async def rules_client(aiohttp_client, make_settings, rules_dir):
    return await aiohttp_client(create_app(make_settings(rules_dir=str(rules_dir))))


async def _document(client, iid: str) -> dict:
    resp = await client.get(f"/v1/interactions/{iid}")
    assert resp.status == 200
    return await resp.json()


async def test_korean_complaint_is_tagged_and_records_the_ruleset_version(rules_client):
    resp = await rules_client.post("/v1/interactions", json=payloads.sms(text="요금제 해지하고 환불 받고 싶어요"))
    assert resp.status == 201
    doc = await _document(rules_client, (await resp.json())["id"])
    version = rules_client.app[keys.RULES].ruleset.version
    assert doc["tags"] == ["complaint"]
    assert doc["ruleset_version"] == version
    # the version is one the hub keeps the sources of (for replay)
    async with rules_client.app[keys.ENGINE].connect() as conn:
        assert (await conn.execute(select(rulesets.c.version))).scalars().all() == [version]
    # auto_reply waits in scheduled_actions for the outbound module
    async with rules_client.app[keys.ENGINE].connect() as conn:
        rows = (await conn.execute(select(scheduled_actions))).mappings().all()
    assert [(r["kind"], json.loads(r["payload"])["template"]) for r in rows] == [("auto_reply", "sms-received")]

    plain = await rules_client.post("/v1/interactions", json=payloads.sms(text="배송지 변경 부탁드립니다"))
    assert (await _document(rules_client, (await plain.json())["id"])).get("tags", []) == []


async def test_vip_profile_gets_priority_and_tag(rules_client):
    first = await (await rules_client.post("/v1/interactions", json=payloads.sms())).json()
    assert (await _document(rules_client, first["id"])).get("priority", 0) == 0
    async with rules_client.app[keys.ENGINE].begin() as conn:
        await conn.execute(update(profiles).where(profiles.c.id == uuid.UUID(first["profile_id"]))
                           .values(attributes=json.dumps({"tier": "vip"})))
    second = await (await rules_client.post("/v1/interactions", json=payloads.sms(text="cancel please"))).json()
    doc = await _document(rules_client, second["id"])
    assert doc["priority"] == 10
    assert doc["tags"] == ["vip", "complaint"]  # the higher-priority rule's actions come first


async def test_publish_rule_event_and_profile_update_in_the_outbox(rules_client):
    small = await rules_client.post("/v1/interactions", json=pos(20_000))
    big = await (await rules_client.post("/v1/interactions", json=pos(1_500_000))).json()
    assert small.status == 201
    engine = rules_client.app[keys.ENGINE]
    async with engine.connect() as conn:
        events = (await conn.execute(select(outbox.c.type, outbox.c.routing_key, outbox.c.body)
                                     .where(outbox.c.type.in_(["erp.basket.large", "profile.updated"]))
                                     .order_by(outbox.c.seq))).all()
        attrs = (await conn.execute(select(profiles.c.attributes).where(profiles.c.id == uuid.UUID(big["profile_id"])))).scalar()
    # profile.updated events from other sources (POS purchase totals) are not the rules'
    events = [e for e in events if e.type != "profile.updated" or json.loads(e.body)["data"]["source"] == "rules"]
    assert [e.type for e in events] == ["erp.basket.large", "profile.updated"]
    erp = json.loads(events[0].body)
    assert events[0].routing_key == "erp.basket.large.pos"
    assert erp["data"]["id"] == big["id"] and erp["data"]["transaction"]["total"] == "1500000"
    assert json.loads(events[1].body)["data"]["changed"] == {
        "segments": ["high-value"], "tier": "gold", "last_big_basket": True}
    # The profile shows them: tier and segments in their own fields, the rest as custom attributes.
    shown = await (await rules_client.get(f"/v1/profiles/{big['profile_id']}")).json()
    assert shown["tier"] == "gold" and shown["segments"] == ["high-value"]
    assert shown["attributes"] == {"last_big_basket": True}
    assert json.loads(attrs) == {"last_big_basket": True}


async def test_no_rules_dir_means_no_rules(client):
    resp = await client.post("/v1/interactions", json=payloads.sms(text="환불"))
    doc = await _document(client, (await resp.json())["id"])
    assert "ruleset_version" not in doc and doc.get("tags", []) == []
    assert await count_rows(client.app, "scheduled_actions") == 0
    reload = await client.post("/v1/rules/reload")
    assert reload.status == 409 and (await reload.json())["fields"][0]["field"] == "rules_dir"


async def test_bad_reload_is_refused_with_line_numbers_and_old_rules_stay(rules_client, rules_dir):
    old = rules_client.app[keys.RULES].ruleset.version
    (rules_dir / "zz-bad.yaml").write_text(
        "rules:\n"
        "  - name: broken\n"
        "    on: interaction.recieved\n"
        "    when: {field: interaction.chanel, op: eq, value: sms}\n"
        "    then: [{add_tag: x}]\n", encoding="utf-8")
    resp = await rules_client.post("/v1/rules/reload")
    assert resp.status == 422
    body = await resp.json()
    assert body["running_version"] == old
    lines = sorted(i["line"] for i in body["issues"])
    assert lines == [3, 4] and all(i["file"].endswith("zz-bad.yaml") for i in body["issues"])
    assert "interaction.received" in json.dumps(body["issues"])  # the did-you-mean
    # the old rules still decide
    after = await (await rules_client.post("/v1/interactions", json=payloads.sms(text="refund"))).json()
    doc = await _document(rules_client, after["id"])
    assert doc["tags"] == ["complaint"] and doc["ruleset_version"] == old


@pytest.mark.clock
async def test_ten_kinds_of_mistakes_are_all_refused_in_one_reload_and_one_check(rules_client, rules_dir, capsys):
    old = rules_client.app[keys.RULES].ruleset.version
    bad = rules_dir / "zz-ten.yaml"
    bad.write_text(ten_mistakes.TEXT, encoding="utf-8")
    resp = await rules_client.post("/v1/rules/reload")
    assert resp.status == 422
    body = await resp.json()
    ten_mistakes.check(body["issues"])
    assert {i["file"] for i in body["issues"]} == {str(bad)}
    assert body["running_version"] == old == rules_client.app[keys.RULES].ruleset.version

    assert omnihub(["rules", "check", str(rules_dir)]) == 1  # the CLI a rules author runs first
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == "10 error(s); rules not loaded"
    assert [p.split(": ")[0] for p in printed[:-1]] == [f"{bad}:{line}" for line, _ in ten_mistakes.EXPECTED]


async def test_reload_swaps_rules_and_sighup_path_logs_refusals(rules_client, rules_dir, caplog):
    old = rules_client.app[keys.RULES].ruleset.version
    (rules_dir / "main.yaml").write_text(RULES.replace("add_tag: complaint", "add_tag: churn-risk"), encoding="utf-8")
    resp = await rules_client.post("/v1/rules/reload")
    assert resp.status == 200
    body = await resp.json()
    assert body["previous_version"] == old and body["version"] != old
    doc = await _document(rules_client, (await (await rules_client.post(
        "/v1/interactions", json=payloads.sms(text="환불"))).json())["id"])
    assert doc["tags"] == ["churn-risk"] and doc["ruleset_version"] == body["version"]

    # SIGHUP runs reload_logged: a bad file is logged, never raised, and the rules stay.
    (rules_dir / "main.yaml").write_text("rules: [{name: x}]\n", encoding="utf-8")
    await reload_logged(rules_client.app)
    assert rules_client.app[keys.RULES].ruleset.version == body["version"]
    assert "rules reload refused" in caplog.text
    (rules_dir / "main.yaml").write_text(RULES, encoding="utf-8")
    await reload_logged(rules_client.app)
    assert rules_client.app[keys.RULES].ruleset.version == old


async def test_bad_rules_dir_refuses_to_start(aiohttp_client, make_settings, tmp_path):
    from rules import RulesError

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "r.yaml").write_text("rules:\n  - name: a\n    on: interaction.received\n    then: [{nope: 1}]\n")
    with pytest.raises(RulesError) as info:
        await aiohttp_client(create_app(make_settings(rules_dir=str(bad))))
    assert info.value.issues[0].line == 4 and "unknown action" in info.value.issues[0].message


async def test_dry_run_explains_failed_conditions(rules_client):
    sample = {"interaction": payloads.sms(text="hello"), "profile": {"tier": "gold"},
              "now": "2026-11-23T10:00:00+09:00"}
    resp = await rules_client.post("/v1/rules/test", json=sample)
    assert resp.status == 200
    body = await resp.json()
    assert body["matched"] == ["sms-ack"]
    vip = next(t for t in body["trace"] if t["rule"] == "vip-first")
    assert vip["matched"] is False
    assert vip["failures"][0] | {"line": 0} == {"field": "profile.tier", "op": "eq", "expected": "vip",
                                                  "actual": "gold", "missing": False, "line": 0}
    assert any("profile.tier eq 'vip': found 'gold'" in line for line in body["explain"])
    # nothing was stored by a dry run
    assert await count_rows(rules_client.app, "interactions") == 0


async def test_dry_run_with_inline_rules_and_field_errors(rules_client):
    inline = "rules:\n  - name: t\n    on: interaction.received\n    then: [{add_tag: tried}]\n"
    resp = await rules_client.post("/v1/rules/test", json={"rules": inline, "interaction": payloads.sms()})
    body = await resp.json()
    assert resp.status == 200 and body["matched"] == ["t"] and body["actions"][0]["tag"] == "tried"

    bad_rules = await rules_client.post("/v1/rules/test", json={"rules": "rules: [{name: t}]\n"})
    assert bad_rules.status == 422 and (await bad_rules.json())["issues"][0]["line"] == 1
    bad_now = await rules_client.post("/v1/rules/test", json={"now": "yesterday"})
    assert bad_now.status == 422 and (await bad_now.json())["fields"][0]["field"] == "now"
    bad_interaction = await rules_client.post("/v1/rules/test", json={"interaction": {"channel": "sms"}})
    assert bad_interaction.status == 422 and (await bad_interaction.json())["fields"][0]["field"] == "interaction"
    not_json = await rules_client.post("/v1/rules/test", data=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status == 400


@pytest.mark.clock
async def test_timer_rows_are_written_with_the_interaction(rules_client, rules_dir):
    (rules_dir / "timer.yaml").write_text(TIMER_RULE, encoding="utf-8")
    assert (await rules_client.post("/v1/rules/reload")).status == 200
    resp = await (await rules_client.post("/v1/interactions", json=payloads.sms(conversation_key="c-1"))).json()
    async with rules_client.app[keys.ENGINE].connect() as conn:
        row = (await conn.execute(select(timers))).mappings().one()
    assert (row["rule"], row["name"], row["key"], row["state"]) == ("wait-reply", "no-reply", "conversation:c-1", "pending")
    assert str(row["interaction_id"]) == resp["id"]
    assert (row["due_at"] - row["created_at"]).total_seconds() == 600
    assert abs((row["created_at"] - datetime.now(UTC)).total_seconds()) < 30


TIMER_RULE = """\
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
"""


WELCOME_RULE = """\
rules:
  - name: welcome-new-customer
    on: profile.created
    when: {field: profile.display_name, op: exists}
    then:
      - add_tag: first-contact
      - set_priority: 1
      - add_segment: new-customer
      - set_profile: {attributes.source: sms}
      - send_message: {template: welcome, channel: auto, purpose: transactional, delay: 1h}
"""


async def test_profile_created_rules_run_once_for_a_new_customer(rules_client, rules_dir):
    (rules_dir / "welcome.yaml").write_text(WELCOME_RULE, encoding="utf-8")
    assert (await rules_client.post("/v1/rules/reload")).status == 200
    first = await (await rules_client.post("/v1/interactions", json=payloads.sms(text="환불"))).json()
    doc = await _document(rules_client, first["id"])
    # the interaction's own rules decide first; profile.created adds to them
    assert doc["tags"] == ["complaint", "first-contact"] and doc["priority"] == 1
    again = await (await rules_client.post("/v1/interactions", json=payloads.sms(text="hello"))).json()
    assert again["profile_id"] == first["profile_id"]
    assert (await _document(rules_client, again["id"])).get("tags", []) == []  # not a new profile
    async with rules_client.app[keys.ENGINE].connect() as conn:
        attrs = (await conn.execute(select(profiles.c.attributes)
                                    .where(profiles.c.id == uuid.UUID(first["profile_id"])))).scalar()
        welcomes = (await conn.execute(select(scheduled_actions).where(
            scheduled_actions.c.kind == "send_message"))).mappings().all()
        updated = (await conn.execute(select(outbox.c.body).where(outbox.c.type == "profile.updated"))).scalars().all()
    assert json.loads(attrs) == {"source": "sms"}
    shown = await (await rules_client.get(f"/v1/profiles/{first['profile_id']}")).json()
    assert shown["segments"] == ["new-customer"] and shown["attributes"] == {"source": "sms"}
    (welcome,) = welcomes
    assert json.loads(welcome["payload"])["template"] == "welcome" and str(welcome["profile_id"]) == first["profile_id"]
    assert welcome["rule"] == "welcome-new-customer"
    assert [json.loads(b)["data"]["rules"] for b in updated] == [["welcome-new-customer"]]
