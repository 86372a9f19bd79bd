"""`omnihub demo --once --port 0`, run as a user runs it, and its summary checked against what the
hub really stored: the database is read here on its own (stdlib sqlite3), so a summary made of
canned text, or of the demo's own variables rather than the hub's answers, fails."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

CUSTOMER_PHONE_E164 = "+821055550100"
CUSTOMER_EMAIL = "minji.kim@example.com"


def _uuid(hex_id: str) -> str:
    return str(uuid.UUID(hex_id))  # SQLite keeps ids as 32 hex digits; the API writes them with dashes


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[subprocess.CompletedProcess, sqlite3.Connection]:
    """One run shared by the tests below (it takes about two seconds)."""
    workdir = tmp_path_factory.mktemp("demo")
    database = workdir / "demo.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}  # the bundled config only
    result = subprocess.run(
        [str(Path(sys.executable).with_name("omnihub")), "demo", "--once", "--port", "0",
         "--database-url", f"sqlite+aiosqlite:///{database}"],
        capture_output=True, text=True, timeout=60, cwd=workdir, env=env,
    )
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(database)
    yield result, conn
    conn.close()


def test_one_profile_holds_the_sms_number_and_the_email_address(demo):
    result, db = demo
    (profile_id,) = db.execute("SELECT profile_id FROM identifiers WHERE type = 'phone' AND value = ?",
                               (CUSTOMER_PHONE_E164,)).fetchone()
    held = set(db.execute("SELECT type, value FROM identifiers WHERE profile_id = ?", (profile_id,)))
    assert held == {("phone", CUSTOMER_PHONE_E164), ("email", CUSTOMER_EMAIL)}
    assert db.execute("SELECT count(*) FROM profiles").fetchone() == (1,)
    out = result.stdout
    assert f"Customer profile {_uuid(profile_id)}" in out
    assert re.search(rf"^\s+phone\s+{re.escape(CUSTOMER_PHONE_E164)}$", out, re.M)
    assert re.search(rf"^\s+email\s+{re.escape(CUSTOMER_EMAIL)}$", out, re.M)
    channels = {c for (c,) in db.execute("SELECT channel FROM interactions WHERE profile_id = ?", (profile_id,))}
    assert channels == {"sms", "email"}
    assert "Timeline: 2 interaction(s) on 2 channel(s)" in out


def test_the_repeats_were_answered_with_the_same_id_and_stored_once(demo):
    result, db = demo
    rows = db.execute("SELECT id, provider, provider_ref FROM interactions ORDER BY id").fetchall()
    assert len(rows) == 2  # two webhooks each sent twice
    (email_id,) = [_uuid(i) for i, provider, _ in rows if provider == "helpdesk"]
    (sms_id, sid) = [(_uuid(i), ref) for i, provider, ref in rows if provider == "twilio"][0]
    out = result.stdout
    assert f'POST /v1/interactions -> 201 id="{email_id}", created=true' in out
    assert f'POST /v1/interactions -> 200 id="{email_id}", created=false' in out
    assert out.count("POST /channels/sms_twilio/inbound (X-Twilio-Signature) -> 200") == 2
    assert f"holds 1 interaction(s) with MessageSid {sid} (id {sms_id})" in out


def test_the_refund_rule_tagged_raised_and_routed_the_sms(demo):
    result, db = demo
    iid, priority, document, version = db.execute(
        "SELECT id, priority, document, ruleset_version FROM interactions WHERE channel = 'sms'").fetchone()
    tags = json.loads(document)["tags"]
    assert "refund" in tags and priority == 8  # what the bundled rule says, as the hub stored it
    task_id, queue, task_priority, state, agent = db.execute(
        "SELECT id, queue, priority, state, agent_id FROM tasks WHERE interaction_id = ?", (iid,)).fetchone()
    assert queue == "billing"
    # This interaction's lines on the timeline (its id also ends a line of the story, in parentheses).
    block = result.stdout.split(f" id {_uuid(iid)}\n", 1)[1].split("\n  20", 1)[0]
    assert f"rules (ruleset {version}): tags {tags}, priority {priority}" in block
    assert f"routed: task {_uuid(task_id)} in queue {queue} (priority {task_priority}), {state}" in block
    if agent:
        assert f"to agent {agent}" in block


def test_the_outbox_summary_counts_the_events_the_hub_wrote(demo):
    result, db = demo
    waiting = dict(db.execute("SELECT routing_key, count(*) FROM outbox WHERE published_at IS NULL GROUP BY 1"))
    assert {"interaction.received.sms", "interaction.received.email", "profile.created",
            "task.created.sms"} <= waiting.keys()
    out = result.stdout
    assert f"Outbox: {sum(waiting.values())} event(s) waiting, broker disabled" in out
    listed = dict(re.findall(r"^  ([a-z_.]+)\s+(\d+) waiting", out, re.M))
    assert {key: int(n) for key, n in listed.items()} == waiting
    assert "OMNIHUB_AMQP_URL" in out


def test_logs_are_json_and_keep_the_customer_s_number_and_address_out(demo):
    result, _ = demo
    entries = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert any(e["logger"] == "omnihub.demo" and e["message"] == "demo story told" for e in entries)
    for secret in (CUSTOMER_PHONE_E164, "010-5555-0100", "01055550100", CUSTOMER_EMAIL):
        assert secret not in result.stderr
