"""Authentication and authorization (hub.access.auth) on a real hub, SQLite and PostgreSQL: logins, tokens,
API keys and their scopes, agents confined to their own tasks, and every route declaring its need."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import select, update

from hub import keys
from hub.access import store as auth_store
from hub.access.auth import (
    KEY_PREFIX,
    PUBLIC,
    Role,
    Scope,
    hash_password,
    new_secret,
    required,
    verify_password,
)
from hub.api.errors import is_not_routed
from hub.app import create_app
from hub.storage.auth_models import api_keys, sessions, users
from hub.storage.routing_models import tasks
from tests.hub.assignment.test_routing_flow import route_from_metadata
from tests.hub.conftest import eventually
from tests.hub.payloads import sms

ROUTING = {"queues": [{"name": "support", "sla_s": 30}], "poll_interval_s": 0.05,
           "agents": [{"id": "alice"}, {"id": "bob", "capacity": {"max_per_channel": {"sms": 1}}}]}
PASSWORD = "correct horse battery"
CHAT = {"chat": {"secret": "auth-test-chat-secret-0123456", "allowed_origins": ["http://127.0.0.1:8000"]}}


def auth_settings(make_settings, tmp_path, **auth):
    return make_settings(auth={"enabled": True, "key_cache_s": 0, **auth}, routing=ROUTING,
                         blob_dir=str(tmp_path / "blobs"), adapters=CHAT)


@pytest.fixture
async def hub(aiohttp_client, make_settings, tmp_path):
    client = await aiohttp_client(create_app(auth_settings(make_settings, tmp_path)))
    client.app[keys.PIPELINE].steps.insert(0, route_from_metadata)
    await client.app[keys.ROUTER].active.wait()
    return client


async def add_user(client, name: str, role: Role, agent_id: str | None = None) -> None:
    async with client.app[keys.ENGINE].begin() as conn:
        await auth_store.add_user(conn, username=name, password_hash=hash_password(PASSWORD), role=role.value,
                                  agent_id=agent_id, now=datetime.now(UTC))


async def add_key(client, name: str, *scopes: Scope) -> str:
    key, digest = new_secret(KEY_PREFIX)
    async with client.app[keys.ENGINE].begin() as conn:
        await auth_store.add_key(conn, name=name, key_sha256=digest, scopes=list(scopes), now=datetime.now(UTC))
    return key


async def login(client, name: str, password: str = PASSWORD) -> str:
    resp = await client.post("/v1/auth/login", json={"username": name, "password": password})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["token"]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_passwords_are_salted_scrypt_and_verify():
    one, two = hash_password("pw-123456"), hash_password("pw-123456")
    assert one != two and one.startswith("scrypt$") and "pw-123456" not in one
    assert verify_password("pw-123456", one) and not verify_password("pw-1234567", one)
    assert not verify_password("x", "garbage")


async def test_protected_routes_answer_401_without_credentials_and_public_ones_answer(hub):
    for method, path in [("GET", "/v1/queues"), ("GET", "/v1/tasks"), ("GET", f"/v1/profiles/{uuid.uuid4()}"),
                         ("POST", "/v1/messages"), ("POST", "/v1/rules/reload"), ("GET", "/v1/outbox"),
                         ("GET", "/metrics"), ("GET", "/v1/auth/me"), ("GET", "/v1/agents/ws?agent_id=alice")]:
        resp = await hub.request(method, path)
        assert resp.status == 401, (method, path, resp.status)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await resp.json())["error"] == "unauthorized"
    resp = await hub.post("/v1/interactions", json=sms(text="hi"))  # the inline check
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    for path in ("/healthz", "/readyz", "/v1/schema/interaction", "/v1/openapi.json", "/v1/asyncapi.json",
                 "/console/", "/console/api.js", "/chat/widget.js"):
        resp = await hub.get(path)
        assert resp.status == 200, (path, resp.status)
    resp = await hub.get("/v1/no-such-thing")
    assert resp.status == 404  # the catch-all still answers what is not routed


async def test_every_route_declares_what_it_needs(hub):
    """A route added without @requires is caught here (and refused by Authenticator.wrap at start)."""
    undeclared, checked = [], 0
    for route in hub.app.router.routes():
        if is_not_routed(route):
            continue  # answers only 404/405 for paths no route takes
        checked += 1
        if required(route.handler) is None:
            undeclared.append(f"{route.method} {route.resource.canonical}")
    assert not undeclared, f"routes that declare no @requires: {undeclared}"
    assert checked > 40


async def test_every_non_public_route_refuses_a_request_without_credentials(hub):
    for route in hub.app.router.routes():
        need = required(route.handler)
        if is_not_routed(route) or need == PUBLIC or route.method == "HEAD":
            continue
        path = re.sub(r"\{[^}]+\}", "x", route.resource.canonical)
        resp = await hub.request(route.method, path)
        assert resp.status == 401, (route.method, path, need, resp.status)


@pytest.mark.clock
async def test_login_good_and_bad_password_me_and_logout(hub):
    await add_user(hub, "sam", Role.SUPERVISOR)
    resp = await hub.post("/v1/auth/login", json={"username": "sam", "password": "wrong"})
    assert resp.status == 401 and (await resp.json())["error"] == "invalid_credentials"
    resp = await hub.post("/v1/auth/login", json={"username": "nobody", "password": PASSWORD})
    assert resp.status == 401
    resp = await hub.post("/v1/auth/login", json={"username": "sam", "password": PASSWORD})
    assert resp.status == 200
    body = await resp.json()
    assert body["user"] == {"name": "sam", "role": "supervisor", "agent_id": None}
    token = body["token"]
    assert datetime.fromisoformat(body["expires_at"]) > datetime.now(UTC) + timedelta(hours=7)
    async with hub.app[keys.ENGINE].connect() as conn:  # stored hashed only
        stored = (await conn.execute(select(sessions.c.token_sha256))).scalars().all()
        hashes = (await conn.execute(select(users.c.password_hash))).scalars().all()
    assert token not in stored and len(stored) == 1 and PASSWORD not in hashes[0]
    resp = await hub.get("/v1/auth/me", headers=bearer(token))
    assert resp.status == 200
    me = await resp.json()
    assert me["name"] == "sam" and me["role"] == "supervisor" and "routing" in me["scopes"]
    assert (await hub.get("/v1/queues", headers=bearer(token))).status == 200
    resp = await hub.post("/v1/rules/reload", headers=bearer(token))
    assert resp.status == 403 and "rules:admin" in (await resp.json())["message"]
    assert (await hub.post("/v1/auth/logout", headers=bearer(token))).status == 204
    assert (await hub.get("/v1/queues", headers=bearer(token))).status == 401


@pytest.mark.clock
async def test_an_expired_token_and_a_disabled_user_are_refused(hub):
    await add_user(hub, "sam", Role.SUPERVISOR)
    token = await login(hub, "sam")
    async with hub.app[keys.ENGINE].begin() as conn:
        await conn.execute(update(sessions).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    resp = await hub.get("/v1/queues", headers=bearer(token))
    assert resp.status == 401
    token = await login(hub, "sam")
    async with hub.app[keys.ENGINE].begin() as conn:
        await auth_store.disable_user(conn, "sam", datetime.now(UTC))
    assert (await hub.get("/v1/queues", headers=bearer(token))).status == 401
    resp = await hub.post("/v1/auth/login", json={"username": "sam", "password": PASSWORD})
    assert resp.status == 401


@pytest.mark.clock
async def test_a_key_with_the_scope_works_without_it_403_and_revoked_401(hub):
    ingest = await add_key(hub, "shop", Scope.INTERACTIONS_WRITE)
    resp = await hub.post("/v1/interactions", json=sms(text="hi"), headers=bearer(ingest))
    assert resp.status == 201, await resp.text()
    location = resp.headers["Location"]
    assert (await hub.get(location, headers=bearer(ingest))).status == 200  # write implies read
    resp = await hub.get(f"/v1/profiles/{uuid.uuid4()}", headers=bearer(ingest))
    assert resp.status == 403
    body = await resp.json()
    assert body["error"] == "forbidden" and "profiles:read" in body["message"]
    reader = await add_key(hub, "crm", Scope.PROFILES_READ)
    resp = await hub.post("/v1/interactions", json=sms(text="hi"), headers=bearer(reader))
    assert resp.status == 403 and "interactions:write" in (await resp.json())["message"]
    admin = await add_key(hub, "ops", Scope.ADMIN)
    assert (await hub.get("/metrics", headers=bearer(admin))).status == 200
    async with hub.app[keys.ENGINE].begin() as conn:
        assert await auth_store.revoke_key(conn, "shop", datetime.now(UTC))
        stored = (await conn.execute(select(api_keys.c.key_sha256))).scalars().all()
    assert ingest not in stored
    resp = await hub.post("/v1/interactions", json=sms(text="again"), headers=bearer(ingest))
    assert resp.status == 401
    assert (await hub.get("/v1/queues", headers=bearer("ohk_not-a-key"))).status == 401


@pytest.mark.clock
async def test_a_verified_key_is_cached_for_key_cache_s(aiohttp_client, make_settings, tmp_path):
    client = await aiohttp_client(create_app(auth_settings(make_settings, tmp_path, key_cache_s=60)))
    key = await add_key(client, "shop", Scope.OUTBOX_READ)
    assert (await client.get("/v1/outbox", headers=bearer(key))).status == 200
    async with client.app[keys.ENGINE].begin() as conn:
        await auth_store.revoke_key(conn, "shop", datetime.now(UTC))
    # Still remembered by this process (README: a revoked key works up to key_cache_s longer).
    assert (await client.get("/v1/outbox", headers=bearer(key))).status == 200


async def routed_task(client, key: str, phone: str) -> tuple[str, str]:
    """Ingest an SMS routed to support; its task id and profile id."""
    resp = await client.post("/v1/interactions", headers=bearer(key),
                             json=sms(phone, text="help", metadata={"queue": "support"}))
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    iid = uuid.UUID(created["id"])

    async def task_id():
        async with client.app[keys.ENGINE].connect() as conn:
            return (await conn.execute(select(tasks.c.id).where(tasks.c.interaction_id == iid))).scalar()
    return str(await eventually(task_id)), created["profile_id"]


async def test_an_agent_acts_only_as_itself_and_reads_only_its_tasks_profiles(hub):
    await add_user(hub, "ann", Role.AGENT, agent_id="alice")
    await add_user(hub, "sam", Role.SUPERVISOR)
    ann, sam = bearer(await login(hub, "ann")), bearer(await login(hub, "sam"))
    ingest = await add_key(hub, "shop", Scope.INTERACTIONS_WRITE)
    other_task, other_profile = await routed_task(hub, ingest, "010-2222-3333")
    # Nobody is available yet: ann may not act as bob, nor set bob's presence, nor open bob's socket.
    resp = await hub.post("/v1/agents/bob/presence", json={"presence": "available"}, headers=ann)
    assert resp.status == 403 and "only as itself" in (await resp.json())["message"]
    assert (await hub.get("/v1/agents/ws?agent_id=bob", headers=ann)).status == 403
    assert (await hub.post(f"/v1/tasks/{other_task}/accept", json={"agent_id": "bob"}, headers=ann)).status == 403
    assert (await hub.get("/v1/queues", headers=ann)).status == 403  # supervisors' view
    # bob (by a supervisor) takes the first task; then alice comes in and gets the second.
    resp = await hub.post("/v1/agents/bob/presence", json={"presence": "available"}, headers=sam)
    assert resp.status == 200
    async def offered_to_bob():
        resp = await hub.get(f"/v1/tasks/{other_task}", headers=sam)
        return (await resp.json())["agent_id"] == "bob"
    await eventually(offered_to_bob)
    resp = await hub.post(f"/v1/tasks/{other_task}/accept", json={"agent_id": "bob"}, headers=sam)
    assert resp.status == 200, await resp.text()
    resp = await hub.post("/v1/agents/alice/presence", json={"presence": "available"}, headers=ann)
    assert resp.status == 200, await resp.text()
    own_task, own_profile = await routed_task(hub, ingest, "010-4444-5555")
    async def offered_to_alice():
        resp = await hub.get("/v1/tasks", headers=ann)
        return [t for t in (await resp.json())["items"] if t["id"] == own_task]
    await eventually(offered_to_alice)
    listed = (await (await hub.get("/v1/tasks", headers=ann)).json())["items"]
    assert {t["agent_id"] for t in listed} == {"alice"}  # an agent lists its own tasks only
    assert (await hub.get("/v1/tasks?agent_id=bob", headers=ann)).status == 403
    assert (await hub.get(f"/v1/tasks/{other_task}", headers=ann)).status == 403
    # Profiles: its own task's customer yes, another's no (nor a lookup of it, nor its timeline).
    assert (await hub.get(f"/v1/profiles/{own_profile}", headers=ann)).status == 200
    assert (await hub.get(f"/v1/profiles/{own_profile}/timeline", headers=ann)).status == 200
    assert (await hub.get(f"/v1/profiles/{other_profile}", headers=ann)).status == 403
    assert (await hub.get(f"/v1/profiles/{other_profile}/timeline", headers=ann)).status == 403
    assert (await hub.get("/v1/profiles?identifier=phone:010-2222-3333", headers=ann)).status == 403
    assert (await hub.get("/v1/profiles/merge-suggestions", headers=ann)).status == 403
    assert (await hub.get(f"/v1/profiles/{other_profile}", headers=sam)).status == 200  # not confined
    # Messages: to its own task's customer only, and never to a bare address.
    for body in ({"profile_id": other_profile, "text": "hi"}, {"to": {"type": "phone", "value": "010-2222-3333"},
                                                               "text": "hi"}):
        resp = await hub.post("/v1/messages", json={"channel": "sms", **body}, headers=ann)
        assert resp.status == 403, (body, await resp.text())
    resp = await hub.post("/v1/messages", json={"channel": "sms", "profile_id": own_profile, "text": "hi"},
                          headers=ann)
    assert resp.status != 403, await resp.text()  # allowed (this hub runs no SMS adapter to send it)
    # Tasks: ann accepts its own offer, may not wrap up bob's.
    resp = await hub.post(f"/v1/tasks/{own_task}/accept", json={"agent_id": "alice"}, headers=ann)
    assert resp.status == 200, await resp.text()
    assert (await hub.post(f"/v1/tasks/{other_task}/wrapup", json={}, headers=ann)).status == 403
    resp = await hub.post(f"/v1/tasks/{own_task}/wrapup", json={"disposition": "solved"}, headers=ann)
    assert resp.status == 200, await resp.text()
    assert (await hub.post(f"/v1/tasks/{own_task}/complete", json={}, headers=ann)).status == 200


async def test_the_agent_websocket_opens_with_a_ticket_not_a_token(hub):
    await add_user(hub, "ann", Role.AGENT, agent_id="alice")
    token = await login(hub, "ann")
    ticket = (await (await hub.post("/v1/auth/ws-ticket", headers=bearer(token))).json())["ticket"]
    async with hub.ws_connect(f"/v1/agents/ws?agent_id=alice&ticket={ticket}") as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello" and hello["agent"]["id"] == "alice"
    # A token in the URL is taken nowhere, not even on a websocket (it would sit in access logs).
    assert (await hub.get(f"/v1/tasks?token={token}")).status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await hub.ws_connect(f"/v1/agents/ws?agent_id=alice&token={token}")


async def test_with_auth_disabled_me_says_so_and_nothing_is_asked(client):
    resp = await client.get("/v1/auth/me")
    assert resp.status == 200 and await resp.json() == {"auth_enabled": False}
    assert (await client.get("/v1/outbox")).status == 200


def test_tokens_and_keys_are_masked_in_logs():
    from hub.logs import mask

    token, key = new_secret("oht_")[0], new_secret(KEY_PREFIX)[0]
    line = f'GET /v1/agents/ws?agent_id=alice&token={token} 101 Authorization: Bearer {key}'
    masked = mask(line)
    assert token not in masked and key not in masked
    assert "token=oht_***" in masked and "Bearer ohk_***" in masked
