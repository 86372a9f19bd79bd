"""Websockets under auth (hub.access.sockets; issue 17 items 1-3): opened with a one-time ticket, never a
token in the URL; closed within seconds of logout, a disabled user, a revoked key or an expired
session; re-checked on each action; refused from a foreign page's Origin."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import time_machine

from hub import keys
from hub.access import store as auth_store
from hub.access.auth import PUBLIC, Role, Scope, required
from hub.access.sockets import CLOSE_CREDENTIALS_ENDED
from hub.api.errors import is_not_routed
from hub.app import create_app
from tests.hub.access.test_auth import CHAT, add_key, add_user, auth_settings, bearer, login

CLOSE_WITHIN_S = 5.0  # the acceptance figure; the default re-check runs every 2 s


@pytest.fixture
async def hub_with(aiohttp_client, make_settings, tmp_path):
    async def make(**auth):
        client = await aiohttp_client(create_app(auth_settings(make_settings, tmp_path, **auth)))
        await client.app[keys.ROUTER].active.wait()
        return client
    return make


async def _ticket(client, credential: str) -> str:
    resp = await client.post("/v1/auth/ws-ticket", headers=bearer(credential))
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["ticket"].startswith("ohw_") and body["expires_at"].endswith("Z")
    return body["ticket"]


async def _open(client, ticket: str, agent_id: str = "alice"):
    ws = await client.ws_connect(f"/v1/agents/ws?agent_id={agent_id}&ticket={ticket}")
    hello = await ws.receive_json(timeout=30)
    assert hello["type"] == "hello"
    return ws


async def _closed_within(ws, seconds: float) -> tuple[int | None, float]:
    """Wait for the hub to close `ws`; its close code and how long it took."""
    code, _reason, took = await _closed(ws, seconds)
    return code, took


async def _closed(ws, seconds: float) -> tuple[int | None, str, float]:
    start = time.monotonic()
    while True:
        msg = await ws.receive(timeout=seconds + 10)  # generous: measured below, not by the timeout
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            reason = msg.extra if msg.type is aiohttp.WSMsgType.CLOSE and isinstance(msg.extra, str) else ""
            return ws.close_code, reason, time.monotonic() - start


async def test_a_token_in_the_url_is_refused_on_every_route(hub_with):
    hub = await hub_with()
    admin = await add_key(hub, "root", Scope.ADMIN)
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade"}
    resp = await hub.get(f"/v1/queues?token={admin}", headers=upgrade)
    assert resp.status == 401
    checked = 0
    for route in hub.app.router.routes():
        if is_not_routed(route) or required(route.handler) == PUBLIC or route.method == "HEAD":
            continue
        path = re.sub(r"\{[^}]+\}", "x", route.resource.canonical)
        resp = await hub.request(route.method, f"{path}?token={admin}", headers=upgrade)
        assert resp.status == 401, (route.method, path, resp.status)
        checked += 1
    assert checked > 30
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await hub.ws_connect(f"/v1/agents/ws?agent_id=alice&token={admin}")
    assert refused.value.status == 401


@pytest.mark.clock
async def test_a_ticket_opens_one_socket_once(hub_with):
    hub = await hub_with()
    await add_user(hub, "ann", Role.AGENT, agent_id="alice")
    token = await login(hub, "ann")
    ticket = await _ticket(hub, token)
    ws = await _open(hub, ticket)
    with pytest.raises(aiohttp.WSServerHandshakeError) as again:
        await hub.ws_connect(f"/v1/agents/ws?agent_id=alice&ticket={ticket}")
    assert again.value.status == 401
    await ws.close()
    unused = await _ticket(hub, token)
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=31), tick=True):  # past auth.ws_ticket_ttl_s
        with pytest.raises(aiohttp.WSServerHandshakeError) as late:
            await hub.ws_connect(f"/v1/agents/ws?agent_id=alice&ticket={unused}")
        assert late.value.status == 401


@pytest.mark.clock
async def test_logout_closes_the_socket(hub_with):
    hub = await hub_with()
    await add_user(hub, "ann", Role.AGENT, agent_id="alice")
    token = await login(hub, "ann")
    ws = await _open(hub, await _ticket(hub, token))
    assert (await hub.post("/v1/auth/logout", headers=bearer(token))).status == 204
    code, took = await _closed_within(ws, CLOSE_WITHIN_S)
    assert code == CLOSE_CREDENTIALS_ENDED and took < CLOSE_WITHIN_S, (code, took)


@pytest.mark.clock
async def test_disabling_the_user_closes_the_socket(hub_with):
    hub = await hub_with()
    await add_user(hub, "ann", Role.AGENT, agent_id="alice")
    ws = await _open(hub, await _ticket(hub, await login(hub, "ann")))
    async with hub.app[keys.ENGINE].begin() as conn:  # what `omnihub users disable ann` does
        await auth_store.disable_user(conn, "ann", datetime.now(UTC))
    code, took = await _closed_within(ws, CLOSE_WITHIN_S)
    assert code == CLOSE_CREDENTIALS_ENDED and took < CLOSE_WITHIN_S, (code, took)


@pytest.mark.clock
async def test_revoking_the_key_closes_the_socket(hub_with):
    hub = await hub_with()
    key = await add_key(hub, "wallboard", Scope.ROUTING)
    ws = await _open(hub, await _ticket(hub, key))
    async with hub.app[keys.ENGINE].begin() as conn:
        await auth_store.revoke_key(conn, "wallboard", datetime.now(UTC))
    code, reason, took = await _closed(ws, CLOSE_WITHIN_S)
    assert code == CLOSE_CREDENTIALS_ENDED and took < CLOSE_WITHIN_S, (code, took)
    assert reason == "credentials revoked: log in again"


@pytest.mark.clock
async def test_session_expiry_closes_the_socket(hub_with):
    hub = await hub_with(token_ttl_s=3)
    await add_user(hub, "ann", Role.AGENT, agent_id="alice")
    ws = await _open(hub, await _ticket(hub, await login(hub, "ann")))
    code, took = await _closed_within(ws, 3 + CLOSE_WITHIN_S)
    assert code == CLOSE_CREDENTIALS_ENDED and took < 3 + CLOSE_WITHIN_S, (code, took)


@pytest.mark.clock
async def test_an_action_is_rechecked_before_the_next_round(hub_with):
    hub = await hub_with(socket_recheck_s=3600)  # only the per-action check can catch it
    key = await add_key(hub, "desk", Scope.ROUTING)
    ws = await _open(hub, await _ticket(hub, key))
    async with hub.app[keys.ENGINE].begin() as conn:
        await auth_store.revoke_key(conn, "desk", datetime.now(UTC))
    await ws.send_json({"type": "accept", "task_id": "00000000-0000-0000-0000-000000000000"})
    code, _took = await _closed_within(ws, CLOSE_WITHIN_S)
    assert code == CLOSE_CREDENTIALS_ENDED


@pytest.fixture
async def open_hub(aiohttp_client, make_settings, tmp_path):
    client = await aiohttp_client(create_app(make_settings(
        routing={"queues": [{"name": "support"}], "agents": [{"id": "alice"}]}, adapters=CHAT,
        blob_dir=str(tmp_path / "blobs"))))
    await client.app[keys.ROUTER].active.wait()
    return client


async def test_a_foreign_origin_is_refused_on_both_sockets_even_with_auth_off(open_hub):
    for path in ("/v1/agents/ws?agent_id=alice", "/v1/chat/ws"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await open_hub.ws_connect(path, headers={"Origin": "https://evil.example"})
        assert refused.value.status == 403, path
    own = f"http://{open_hub.host}:{open_hub.port}"
    ws = await open_hub.ws_connect("/v1/agents/ws?agent_id=alice", headers={"Origin": own})
    assert (await ws.receive_json(timeout=30))["type"] == "hello"
    await ws.close()
    ws = await open_hub.ws_connect("/v1/agents/ws?agent_id=alice")  # no Origin: not a browser page
    assert (await ws.receive_json(timeout=30))["type"] == "hello"
    await ws.close()


async def test_configured_origins_may_open_the_agent_socket(aiohttp_client, make_settings, tmp_path):
    client = await aiohttp_client(create_app(make_settings(
        routing={"queues": [{"name": "support"}], "agents": [{"id": "alice"}]},
        auth={"socket_origins": ["https://crm.example.com/"]})))
    await client.app[keys.ROUTER].active.wait()
    ws = await client.ws_connect("/v1/agents/ws?agent_id=alice", headers={"Origin": "https://CRM.example.com"})
    assert (await ws.receive_json(timeout=30))["type"] == "hello"
    await ws.close()
