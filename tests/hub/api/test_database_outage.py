"""With PostgreSQL cut, every route answers 503 `unavailable` with Retry-After, never 500, and the
outage is logged twice (when it began, when it ended), not once per request; once PostgreSQL is
back the same routes answer as before, without a restart. (tests/faults/test_database_outage.py
does the same to a real process under load, silent database included.)"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import quote

import pytest
from aiohttp import web

from hub.api.errors import is_not_routed
from hub.app import create_app
from tests.adapters.fake_twilio import FakeTwilio, inbound_params
from tests.hub.conftest import eventually
from tests.hub.payloads import sms
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

PUBLIC_BASE_URL = "https://hub.example.com"
INBOUND = "/channels/sms_twilio/inbound"
CUSTOMER = "+821012345678"
NOT_A_ROUTE = ("/v1/agents/ws", "/v1/chat/ws")  # websockets: their failures are frames, not answers


@pytest.fixture
async def twilio(aiohttp_server):
    fake = FakeTwilio()
    server = await aiohttp_server(fake.app())
    fake.base_url = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
async def proxy():
    proxy = TcpProxy(5432)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def hub(aiohttp_client, make_settings, database_url, proxy, twilio, tmp_path):
    from tests.adapters.fake_twilio import OUR_NUMBER

    settings = make_settings(
        database_url=database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
        database_connect_timeout_s=2, database_statement_timeout_s=2,
        public_base_url=PUBLIC_BASE_URL, blob_dir=str(tmp_path / "blobs"),
        adapters={"sms_twilio": {"account_sid": twilio.account_sid, "auth_token": twilio.auth_token,
                                 "from_number": OUR_NUMBER, "api_base": twilio.base_url}},
    )
    client = await aiohttp_client(create_app(settings))
    client.twilio = twilio
    return client


async def _seed(hub) -> dict[str, str]:
    resp = await hub.post("/v1/interactions", json=sms(CUSTOMER))
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    return {"interaction": created["id"], "profile": created["profile_id"]}


def _needing_the_database(ids: dict[str, str]) -> list[tuple[str, str, dict | None]]:
    """One request of each route family that has to read or write the database to answer."""
    missing = str(uuid.uuid4())
    return [
        ("POST", "/v1/interactions", sms(CUSTOMER)),
        ("GET", f"/v1/interactions/{ids['interaction']}", None),
        ("GET", f"/v1/profiles?identifier={quote('phone:' + CUSTOMER)}", None),
        ("GET", f"/v1/profiles/{ids['profile']}", None),
        ("PATCH", f"/v1/profiles/{ids['profile']}", {"tier": "gold"}),
        ("GET", f"/v1/profiles/{ids['profile']}/timeline", None),
        ("GET", "/v1/profiles/merge-suggestions", None),
        ("GET", f"/v1/messages/{missing}", None),
        ("GET", f"/v1/campaigns/{missing}", None),
        ("GET", f"/v1/tasks/{missing}", None),
        ("GET", "/v1/outbox", None),
        ("GET", "/metrics", None),
        ("GET", "/readyz", None),
    ]


async def _send(hub, method: str, path: str, body: dict | None):
    return await hub.request(method, path, json=body)


async def _twilio_inbound(hub, body: str):
    params = inbound_params(frm=CUSTOMER, body=body)
    return await hub.twilio.post_signed(hub, PUBLIC_BASE_URL + INBOUND, INBOUND, params)


def _assert_unavailable(resp, body: dict, what: str) -> None:
    assert resp.status == 503, f"{what}: {resp.status} {body}"
    assert int(resp.headers["Retry-After"]) > 0, what
    if "error" in body:  # /readyz answers its own report
        assert body["error"] == "unavailable" and "try again" in body["message"], body


async def test_every_route_family_answers_503_with_retry_after_while_postgresql_is_cut(hub, proxy, caplog):
    ids = await _seed(hub)
    await proxy.stop()
    with caplog.at_level(logging.INFO):
        for method, path, body in _needing_the_database(ids):
            resp = await _send(hub, method, path, body)
            if path == "/readyz":
                assert resp.status == 503
                continue
            _assert_unavailable(resp, await resp.json(), f"{method} {path}")
        resp = await _twilio_inbound(hub, "are you there?")
        _assert_unavailable(resp, await resp.json(), "Twilio webhook")

        await proxy.start()
        for method, path, body in _needing_the_database(ids):
            resp = await _send(hub, method, path, body)
            assert resp.status < 400 or (resp.status == 404 and method == "GET"), f"{method} {path}: {resp.status}"
        assert (await _twilio_inbound(hub, "back?")).status == 200

        async def outage_ended() -> bool:
            assert (await hub.get("/v1/outbox")).status == 200
            return any(r.name == "omnihub.outage" and r.levelname == "INFO" for r in caplog.records)

        await eventually(outage_ended, interval=0.2)

    outage = [r for r in caplog.records if r.name == "omnihub.outage"]
    assert [r.levelname for r in outage] == ["WARNING", "INFO"], [r.getMessage() for r in outage]
    assert outage[1].refused >= len(_needing_the_database(ids))
    assert not [r for r in caplog.records if r.exc_info and r.name in ("omnihub.api", "omnihub.pipeline")]


class _AnyName(dict):
    """Path parameters: the seeded ids where the name is known, a placeholder for any other name."""

    def __missing__(self, key: str) -> str:
        return "x"


def _every_route(app: web.Application, ids: dict[str, str]) -> list[tuple[str, str]]:
    values = {"id": ids["profile"], "name": "interaction", "n": "0"}
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path is None or is_not_routed(route) or path in NOT_A_ROUTE or route.method == "HEAD":
            continue
        # / and /console: pages, not the API (/ redirects to the console); /readyz: its own report.
        if path.startswith("/console") or path in ("/", "/healthz", "/readyz"):
            continue
        found.add((route.method, path.format_map(_AnyName(values)) if "{" in path else path))
    return sorted(found)


async def test_no_route_answers_500_while_postgresql_is_cut(hub, proxy):
    ids = await _seed(hub)
    await proxy.stop()
    routes = _every_route(hub.app, ids)
    assert len(routes) > 30  # the sweep reaches the whole API, not a few routes
    unavailable = []
    for method, path in routes:
        resp = await hub.request(method, path, json={})
        body = await resp.json(content_type=None) or {}  # a 204 has none
        assert resp.status != 500 and body.get("error") != "internal_error", f"{method} {path}: {body}"
        if body.get("error") == "unavailable":
            _assert_unavailable(resp, body, f"{method} {path}")
            unavailable.append(path)
    # Most of them need the database (the rest refused the empty body, or answer from memory).
    assert len(unavailable) > 10, unavailable
