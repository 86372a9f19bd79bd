"""`omnihub rules replay`: a candidate ruleset over stored interactions, against what the live one did."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from hub import cli, keys
from hub.app import create_app
from hub.automation.replay import replay
from hub.automation.runtime import load_dir
from hub.storage.engine import create_engine
from tests.hub import payloads
from tests.hub.conftest import count_rows

# Fixed clock (tests/conftest.py): replay reads what was received since a time.
pytestmark = pytest.mark.clock

LIVE = """\
rules:
  - name: complaint-to-retention
    on: interaction.received
    when: {field: interaction.content.text, op: matches, value: "(?i)cancel|refund|해지|환불"}
    then:
      - add_tag: complaint
      - route: {queue: retention, priority: 5}
"""

CANDIDATE = """\
rules:
  - name: complaint-to-retention
    on: interaction.received
    when: {field: interaction.content.text, op: matches, value: "(?i)refund|환불"}
    then:
      - add_tag: complaint
      - route: {queue: retention, priority: 5}
  - name: greeting
    on: interaction.received
    when: {field: interaction.content.text, op: contains, value: hello}
    then:
      - add_tag: greeting
"""


async def test_replay_reports_what_the_candidate_would_change(aiohttp_client, make_settings, tmp_path,
                                                             database_url):
    # Decided by no rules at all (the hub had none configured then).
    hub = await aiohttp_client(create_app(make_settings()))
    await hub.post("/v1/interactions", json=payloads.sms("010-2000-0000", text="refund please"))
    await hub.close()
    live_dir, cand_dir = tmp_path / "live", tmp_path / "candidate"
    for path, text in ((live_dir, LIVE), (cand_dir, CANDIDATE)):
        path.mkdir()
        (path / "rules.yaml").write_text(text, encoding="utf-8")
    hub = await aiohttp_client(create_app(make_settings(rules_dir=str(live_dir))))
    live_version = hub.app[keys.RULES].ruleset.version
    for phone, text in (("010-2000-0001", "환불해주세요"), ("010-2000-0002", "cancel my plan"),
                        ("010-2000-0003", "hello there")):
        await hub.post("/v1/interactions", json=payloads.sms(phone, text=text))
    await hub.close()

    engine = create_engine(database_url)
    try:
        candidate, _ = load_dir(cand_dir)
        report = await replay(engine, candidate, datetime.now(UTC) - timedelta(days=7), max_examples=10)
        assert await count_rows(engine, "scheduled_actions") == 0  # replay acts on nothing
    finally:
        await engine.dispose()
    assert report.scanned == report.compared == 4
    assert report.live_versions == {"(none)": 1, live_version: 3}
    assert report.rules == {
        "complaint-to-retention": {"live": 2, "candidate": 2, "delta": 0},
        "greeting": {"live": 0, "candidate": 1, "delta": 1},
    }
    assert report.differing == 3
    changed = {(ex["candidate"]["matched"] or ["-"])[0]: ex for ex in report.examples}
    assert changed["-"]["live"]["matched"] == ["complaint-to-retention"]  # "cancel" no longer a complaint
    assert changed["greeting"]["candidate"]["actions"] == [{"action": "add_tag", "tag": "greeting"}]
    assert changed["complaint-to-retention"]["live_version"] == "(none)"

    config = tmp_path / "hub.yaml"
    config.write_text(f"database_url: {database_url}\n", encoding="utf-8")
    argv = ["--config", str(config), "rules", "replay", str(cand_dir), "--since", "7d", "--json"]
    code, out = await asyncio.to_thread(_run_cli, argv)
    assert code == 0
    assert json.loads(out)["differing"] == 3
    code, out = await asyncio.to_thread(_run_cli, argv[:-1] + ["--examples", "1"])
    assert code == 0 and "3 interaction(s) would be decided differently" in out
    assert "greeting" in out and "+1" in out


def _run_cli(argv: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = cli.main(argv)
    return code, buffer.getvalue()


def test_replay_refuses_a_bad_candidate_and_a_bad_since(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    on: interaction.received\n    then: [{nope: 1}]\n")
    assert cli.main(["rules", "replay", str(bad), "--since", "7d"]) == 1
    assert "bad.yaml:4" in capsys.readouterr().out
    good = tmp_path / "good.yaml"
    good.write_text(LIVE)
    assert cli.main(["rules", "replay", str(good), "--since", "last tuesday"]) == 2
    assert "--since" in capsys.readouterr().err
