"""Every list under /v1 answers one shape, `{"items": [...], "next": cursor | null}`, and pages the
same way (`?limit=&cursor=`): walked a page at a time it gives every item once, in the order of one
big page; a bad limit or cursor is a 422 naming it; the OpenAPI document says so (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import jsonschema
import pytest

from hub import keys
from hub.access import security_log
from hub.api.openapi import document
from hub.app import create_app
from tests.hub.conftest import count_rows, eventually
from tests.hub.payloads import sms, with_identifiers

ROUTING = {
    "queues": [{"name": "support", "sla_s": 30}, {"name": "billing", "sla_s": 30}, {"name": "sales", "sla_s": 30}],
    "agents": [{"id": "alice"}, {"id": "bob"}, {"id": "chris"}],
    "default_queue": "support", "poll_interval_s": 0.05,
}
LISTS = ("/v1/tasks", "/v1/queues", "/v1/agents", "/v1/profiles/merge-suggestions", "/v1/profiles/{id}/timeline",
         "/v1/security/events")


async def _post(client, payload) -> dict:
    resp = await client.post("/v1/interactions", json=payload)
    assert resp.status in (200, 201), await resp.text()
    return await resp.json()


async def populated(aiohttp_client, make_settings):
    """A hub with three of everything each list shows; returns the client and each list's path."""
    client = await aiohttp_client(create_app(make_settings(routing=ROUTING)))
    await client.app[keys.ROUTER].active.wait()
    first = await _post(client, sms("010-7000-0001"))
    for day in (2, 3):  # the same customer twice more: a timeline of three
        await _post(client, sms("010-7000-0001", occurred_at=f"2026-11-{day:02d}T10:00:00+09:00"))
    await _post(client, sms("010-7000-0002"))  # another customer: its own task
    for n in range(3):  # three pairs of loyalty cards one contact links: three merge suggestions
        await _post(client, with_identifiers(("loyalty_id", f"A-{n}"), ("phone", f"010-7100-000{n}"), channel="pos"))
        await _post(client, with_identifiers(("loyalty_id", f"B-{n}"), ("email", f"p{n}@example.com")))
        await _post(client, with_identifiers(("phone", f"010-7100-000{n}"), ("email", f"p{n}@example.com")))

    async with client.app[keys.ENGINE].begin() as conn:  # three logins in the security log
        for n in range(3):
            await security_log.record(conn, security_log.SecurityEvent(security_log.LOGIN, datetime.now(UTC),
                                                                       username=f"agent-{n}"))

    async def every_task_listed():
        listed = len((await (await client.get("/v1/tasks?limit=200")).json())["items"])
        return listed >= 3 and listed == await count_rows(client.app, "tasks")

    await eventually(every_task_listed)  # the router takes committed tasks up after the commit
    paths = {p: p.replace("{id}", first["profile_id"]) for p in LISTS}
    return client, paths


async def _page(client, path: str, **params) -> dict:
    resp = await client.get(path, params=params)
    assert resp.status == 200, (path, resp.status, await resp.text())
    return await resp.json()


async def test_every_list_pages_through_every_item_once_in_one_order(aiohttp_client, make_settings):
    client, paths = await populated(aiohttp_client, make_settings)
    for name, path in paths.items():
        whole = await _page(client, path, limit="200")
        assert whole["next"] is None and len(whole["items"]) >= 3, (name, whole)
        walked, cursor, pages = [], None, 0
        while True:
            page = await _page(client, path, limit="1", **({"cursor": cursor} if cursor else {}))
            assert set(page) - {"active"} == {"items", "next"}, (name, page)
            assert len(page["items"]) == 1
            walked.extend(page["items"])
            pages += 1
            cursor = page["next"]
            if cursor is None:
                break
        assert _keys(walked) == _keys(whole["items"]), name
        assert pages == len(whole["items"]) == len(set(_keys(walked)))
        default = await _page(client, path)  # no limit: the default (50) holds all of these
        assert _keys(default["items"]) == _keys(whole["items"]) and default["next"] is None


def _keys(items: list[dict]) -> list[str]:
    # A queue's stats move with the clock (longest wait): compare what each item is, not its figures.
    return [item.get("id") or item["name"] for item in items]


async def test_a_bad_limit_or_cursor_is_a_422_naming_it_on_every_list(aiohttp_client, make_settings):
    client, paths = await populated(aiohttp_client, make_settings)
    tasks_cursor = (await _page(client, "/v1/tasks", limit="1"))["next"]
    for name, path in paths.items():
        for limit in ("0", "201", "-1", "ten", "1.5", "", "٣"):
            resp = await client.get(path, params={"limit": limit})
            body = await resp.json()
            assert resp.status == 422 and body["fields"][0]["field"] == "limit", (name, limit, body)
            assert "1 to 200" in body["fields"][0]["message"]
        cursors = ["garbage", "", "W10", "eyJ4IjoxfQ"]  # not base64 JSON; "[]"; '{"x":1}'
        if name != "/v1/tasks":
            cursors.append(tasks_cursor)  # another list's cursor is not this list's
        for cursor in cursors:
            resp = await client.get(path, params={"cursor": cursor})
            body = await resp.json()
            assert resp.status == 422 and body["fields"][0]["field"] == "cursor", (name, cursor, body)


async def test_the_openapi_document_describes_the_list_shape_and_the_answers_match_it(aiohttp_client, make_settings):
    client, paths = await populated(aiohttp_client, make_settings)
    doc = document(client.app)
    listed = {path for path, ops in doc["paths"].items()
              if any(p["name"] == "cursor" for p in ops.get("get", {}).get("parameters", []))}
    assert listed == set(LISTS)
    for name, path in paths.items():
        operation = doc["paths"][name]["get"]
        assert {p["name"] for p in operation["parameters"] if p["in"] == "query"} >= {"limit", "cursor"}
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        # The answer validates against the document (its $refs resolved against the document itself).
        jsonschema.validate(await _page(client, path), {**schema, "components": doc["components"]},
                            cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize("path", ["/v1/tasks", "/v1/queues", "/v1/agents"])
async def test_without_an_active_router_a_routing_list_is_empty_in_the_same_shape(aiohttp_client, make_settings,
                                                                                   path):
    client = await aiohttp_client(create_app(make_settings()))  # no queues: this hub routes nothing
    assert await _page(client, path) == {"active": False, "items": [], "next": None}
