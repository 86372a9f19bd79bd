"""Named segments: config conditions recomputed on POS purchases, rule changes and PATCH."""

from __future__ import annotations

import pytest

from hub.app import create_app
from hub.settings import ConfigError, load_settings
from tests.hub.payloads import sms
from tests.hub.profiles.test_profiles_api import events, pos
from tests.hub.profiles.test_profiles_identity import post

SEGMENTS = {
    "big-spender": {"field": "profile.monetary", "op": "gte", "value": 1000000},
    "korean": {"all": [{"field": "profile.locale", "op": "eq", "value": "ko"}]},
}
RULES = """
rules:
  - name: club
    on: interaction.received
    when:
      all:
        - {field: interaction.content.text, op: contains, value: club}
    then:
      - add_segment: club
"""


async def segments_of(client, pid: str) -> list[str]:
    resp = await client.get(f"/v1/profiles/{pid}")
    assert resp.status == 200
    return (await resp.json())["segments"]


async def segment_events(app) -> list[dict]:
    return [e["data"] for e in await events(app, "profile.updated") if e["data"].get("source") == "segments"]


@pytest.fixture
async def seg_client(aiohttp_client, make_settings, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.yaml").write_text(RULES, encoding="utf-8")
    return await aiohttp_client(create_app(make_settings(segments=SEGMENTS, rules_dir=str(rules))))


async def test_pos_purchases_over_the_threshold_join_big_spender(seg_client):
    pid = (await post(seg_client, pos("LOY-9", "600000", "R-1")))["profile_id"]
    assert await segments_of(seg_client, pid) == []
    await post(seg_client, pos("LOY-9", "500000", "R-2"))
    assert await segments_of(seg_client, pid) == ["big-spender"]
    assert await segment_events(seg_client.app) == [
        {"profile_id": pid, "changed": {"segments": ["big-spender"]}, "source": "segments"}]
    await post(seg_client, pos("LOY-9", "1000", "R-3"))  # still a member: no second event
    assert len(await segment_events(seg_client.app)) == 1


async def test_patch_adds_and_removes_a_segment_and_keeps_unconfigured_ones(seg_client):
    pid = (await post(seg_client, sms("010-5555-6666", text="join the club")))["profile_id"]
    assert await segments_of(seg_client, pid) == ["club"]  # a rule's segment, not configured
    resp = await seg_client.patch(f"/v1/profiles/{pid}", json={"locale": "ko"})
    assert resp.status == 200
    body = await resp.json()
    assert body["segments"] == ["club", "korean"]
    assert resp.headers["ETag"] == f'"{body["version"]}"'
    assert await segments_of(seg_client, pid) == ["club", "korean"]
    resp = await seg_client.patch(f"/v1/profiles/{pid}", json={"segments": ["club", "korean", "newsletter"]})
    assert (await resp.json())["segments"] == ["club", "korean", "newsletter"]
    resp = await seg_client.patch(f"/v1/profiles/{pid}", json={"locale": "en"})
    assert (await resp.json())["segments"] == ["club", "newsletter"]
    assert await segments_of(seg_client, pid) == ["club", "newsletter"]
    changes = [e["changed"]["segments"] for e in await segment_events(seg_client.app) if e["profile_id"] == pid]
    assert changes == [["club", "korean"], ["club", "newsletter"]]
    # A PATCH that puts a configured segment on by hand is corrected to what the condition says.
    resp = await seg_client.patch(f"/v1/profiles/{pid}", json={"segments": ["big-spender"]})
    assert (await resp.json())["segments"] == []


async def test_no_segments_configured_means_no_segment_events(client):
    pid = (await post(client, pos("LOY-8", "2000000", "R-1")))["profile_id"]
    assert await segments_of(client, pid) == []
    assert await segment_events(client.app) == []


def test_a_bad_segment_condition_refuses_start_up(tmp_path):
    bad = {**SEGMENTS, "typo": {"field": "profile.locale", "op": "equals", "value": "ko"}}
    with pytest.raises(ConfigError, match="segment 'typo'.*operator") as info:
        load_settings(None, database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db", segments=bad)
    assert "big-spender" not in str(info.value)
