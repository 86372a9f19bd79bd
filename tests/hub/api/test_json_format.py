"""One JSON format in every answer: text as it is (a Korean name is `박서준`, never `\\ubc15\\uc11c\\uc900`)
and every time RFC 3339 in UTC ending in `Z`, whatever offset it came in with and whichever layer
wrote it (the router's clock, a stored row, a pydantic model, a rule's trace)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hub import keys
from hub.access.auth import Role, Scope
from hub.app import create_app
from tests.adapters.conftest import PUBLIC_BASE_URL, twilio, twilio_config  # noqa: F401  (pytest fixtures)
from tests.hub.access.test_auth import add_key, add_user, bearer, login
from tests.hub.conftest import eventually
from tests.hub.payloads import sms, with_identifiers

NAME = "박서준"
TIMEISH = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
ROUTING = {"queues": [{"name": "support", "sla_s": 30}], "agents": [{"id": "alice"}], "default_queue": "support",
           "poll_interval_s": 0.05}
RULES = """
rules:
  - name: 최근-문의
    on: interaction.received
    when: {all: [{field: interaction.occurred_at, op: within, value: 1h}]}
    then: [{add_tag: recent}]
"""


def times(value: Any, at: str = "") -> list[tuple[str, str]]:
    """Every (path, string) in a JSON value that looks like a date and time."""
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in times(v, f"{at}.{k}")]
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in times(v, f"{at}[{i}]")]
    return [(at, value)] if isinstance(value, str) and TIMEISH.match(value) else []


@pytest.fixture
async def hub(twilio, twilio_config, aiohttp_client, make_settings, tmp_path):  # noqa: F811
    settings = make_settings(
        auth={"enabled": True, "key_cache_s": 0}, routing=ROUTING, public_base_url=PUBLIC_BASE_URL,
        blob_dir=str(tmp_path / "blobs"), adapters={"sms_twilio": twilio_config}, quiet_hours=None,
        templates={"promo": {"sms": "{{ profile.display_name }}님, 이번 주 할인"}},
        segments={"vip": {"field": "profile.tier", "op": "eq", "value": "vip"}})
    client = await aiohttp_client(create_app(settings))
    await client.app[keys.ROUTER].active.wait()
    client.admin = bearer(await add_key(client, "admin", Scope.ADMIN))
    return client


@pytest.mark.clock  # times are written at whatever instant CI runs at: checked at several (.ci/run)
async def test_every_answer_writes_times_in_utc_with_z_and_text_unescaped(hub):
    answers: dict[str, tuple[int, str, Any]] = {}

    async def call(method: str, path: str, json: Any = None, headers: dict | None = None) -> Any:
        resp = await hub.request(method, path, json=json, headers=hub.admin if headers is None else headers)
        text = await resp.text()
        answers[f"{method} {path}"] = (resp.status, text, await resp.json())
        assert resp.status < 300 or method == "PATCH", (method, path, resp.status, text)
        return await resp.json()

    # A customer writes at 10:00 in Seoul (+09:00), buys, and gets a name, a consent and a tier.
    first = await call("POST", "/v1/interactions", sms("010-3100-0001", name=NAME))
    pid = first["profile_id"]
    await call("POST", "/v1/interactions", {**with_identifiers(("phone", "010-3100-0001"), channel="pos"),
                                            "kind": "transaction", "occurred_at": "2026-11-20T12:00:00+09:00",
                                            "transaction": {"total": "5000", "currency": "KRW", "items": []}})
    await call("PATCH", f"/v1/profiles/{pid}", {
        "display_name": NAME, "tier": "vip",
        "consents": {"sms:marketing": {"granted": True, "at": "2026-11-23T10:00:00+09:00"}}})
    refused = await call("PATCH", f"/v1/profiles/{pid}", {"timezone": "서울/강남"})
    assert refused["fields"][0]["field"] == "timezone"
    # Two loyalty cards one contact links: a merge suggestion.
    await call("POST", "/v1/interactions", with_identifiers(("loyalty_id", "A-1"), ("phone", "010-3100-0002")))
    await call("POST", "/v1/interactions", with_identifiers(("loyalty_id", "B-1"), ("email", "seo@example.com")))
    await call("POST", "/v1/interactions", with_identifiers(("phone", "010-3100-0002"), ("email", "seo@example.com")))
    await call("GET", f"/v1/profiles/{pid}")
    await call("GET", f"/v1/profiles/{pid}/timeline")
    await call("GET", f"/v1/interactions/{first['id']}")
    await call("GET", "/v1/profiles/merge-suggestions")

    await call("POST", "/v1/agents/alice/presence", {"presence": "available"})
    async def offered() -> bool:
        return bool((await call("GET", "/v1/tasks?agent_id=alice"))["items"])

    await eventually(offered)
    await call("GET", "/v1/agents")
    sent = await call("POST", "/v1/messages", {"profile_id": pid, "channel": "sms", "text": f"{NAME}님, 감사합니다"})
    await call("GET", f"/v1/messages/{sent['id']}")
    campaign = await call("POST", "/v1/campaigns", {"name": "vip 주간", "segment": "vip", "template": "promo"})
    await call("GET", f"/v1/campaigns/{campaign['id']}")
    await call("POST", "/v1/rules/test", {"rules": RULES, "interaction": sms(name=NAME),
                                           "now": "2026-12-01T00:00:00+09:00"})
    await add_user(hub, "minji", Role.SUPERVISOR)
    await call("POST", "/v1/auth/login", {"username": "minji", "password": "correct horse battery"}, headers={})
    await call("GET", "/v1/security/events")  # the login just made
    gone = await call("POST", "/v1/interactions", sms("010-3100-0009"))
    await call("DELETE", f"/v1/profiles/{gone['profile_id']}")

    for name, (_status, text, body) in answers.items():
        assert "\\u" not in text, (name, text)  # nothing ASCII-escaped
        for at, value in times(body):
            assert RFC3339_UTC.fullmatch(value), (name, at, value)
    # The checks above met what they are about (not a walk over answers with no times in them).
    checked = {name for name, (_s, _t, body) in answers.items() if times(body)}
    assert {f"GET /v1/profiles/{pid}", f"GET /v1/profiles/{pid}/timeline", f"GET /v1/interactions/{first['id']}",
            "GET /v1/profiles/merge-suggestions", "GET /v1/tasks?agent_id=alice", "GET /v1/agents",
            f"GET /v1/messages/{sent['id']}", f"GET /v1/campaigns/{campaign['id']}", "POST /v1/rules/test",
            "POST /v1/auth/login", "GET /v1/security/events", f"DELETE /v1/profiles/{gone['profile_id']}"} <= checked
    profile = answers[f"GET /v1/profiles/{pid}"][2]
    assert profile["consents"]["sms:marketing"]["at"] == "2026-11-23T01:00:00Z"  # sent as 10:00+09:00
    assert profile["rfm"]["last_purchase_at"] == "2026-11-20T03:00:00Z"
    assert NAME in answers[f"GET /v1/profiles/{pid}"][1]
    assert "서울/강남" in answers[f"PATCH /v1/profiles/{pid}"][1]  # an error answer too
    timeline = answers[f"GET /v1/profiles/{pid}/timeline"][2]["items"]
    assert [i["occurred_at"] for i in timeline] == ["2026-11-23T01:00:00Z", "2026-11-20T03:00:00Z"]
