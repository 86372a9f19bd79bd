"""Login throttling, lockout and admin unlock, password change and the security event log
(hub.access.throttle, hub.access.logins, hub.access.security_log; issue 17 item 4), on a real hub on
SQLite and PostgreSQL, at a fixed instant (the throttle reads the clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from hub import keys
from hub.access import throttle
from hub.access.auth import Role, Scope
from hub.access.throttle import Attempts, ThrottlePolicy
from hub.app import create_app
from tests.hub.access.test_auth import PASSWORD, add_key, add_user, auth_settings, bearer, login

T0 = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
NEW_PASSWORD = "a much longer passphrase"


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
async def hub_with(aiohttp_client, make_settings, tmp_path):
    async def make(**auth):
        client = await aiohttp_client(create_app(auth_settings(make_settings, tmp_path, **auth)))
        await client.app[keys.ROUTER].active.wait()
        return client
    return make


async def _attempt(client, name: str, password: str):
    return await client.post("/v1/auth/login", json={"username": name, "password": password})


async def _events(client, admin_key: str, **query) -> list[dict]:
    resp = await client.get("/v1/security/events", params=query, headers=bearer(admin_key))
    assert resp.status == 200, await resp.text()
    return (await resp.json())["items"]


async def test_the_sixth_wrong_password_is_throttled_and_the_right_one_then_waits(hub_with, clock):
    hub = await hub_with()
    await add_user(hub, "sam", Role.SUPERVISOR)
    admin = await add_key(hub, "audit", Scope.ADMIN)
    for _ in range(5):
        resp = await _attempt(hub, "sam", "wrong password")
        assert resp.status == 401
    resp = await _attempt(hub, "sam", "wrong password")  # the 6th within a minute
    assert resp.status == 429, await resp.text()
    assert (await resp.json())["error"] == "throttled"
    resp = await _attempt(hub, "sam", PASSWORD)  # the right one waits too
    assert resp.status == 429 and resp.headers["Retry-After"] == "30"
    clock.shift(timedelta(seconds=29))
    assert (await _attempt(hub, "sam", PASSWORD)).status == 429
    clock.shift(timedelta(seconds=2))
    resp = await _attempt(hub, "sam", PASSWORD)
    assert resp.status == 200
    kinds = [e["kind"] for e in await _events(hub, admin, username="sam")]
    assert kinds[0] == "login" and kinds.count("login_failed") == 5 and kinds.count("login_throttled") == 3
    assert all(e["at"].endswith("Z") for e in await _events(hub, admin))


async def test_each_failure_past_the_allowance_doubles_the_wait(hub_with, clock):
    hub = await hub_with(login_free_failures=2, login_base_delay_s=10, login_max_delay_s=40,
                         login_lockout_failures=None)
    await add_user(hub, "sam", Role.SUPERVISOR)
    waits = []
    assert (await _attempt(hub, "sam", "wrong password")).status == 401
    for _ in range(4):
        assert (await _attempt(hub, "sam", "wrong password")).status == 401  # counted; blocks the next
        resp = await _attempt(hub, "sam", "wrong password")
        assert resp.status == 429
        waits.append(int(resp.headers["Retry-After"]))
        clock.shift(timedelta(seconds=waits[-1]))
    assert waits == [10, 20, 40, 40]


async def test_an_account_locks_until_an_admin_unlocks_it(hub_with, clock):
    hub = await hub_with(login_free_failures=5, login_lockout_failures=3)
    await add_user(hub, "sam", Role.SUPERVISOR)
    admin = await add_key(hub, "admin", Scope.ADMIN)
    for _ in range(3):
        assert (await _attempt(hub, "sam", "wrong password")).status == 401
    clock.shift(timedelta(hours=12))  # time alone doesn't lift a lockout
    resp = await _attempt(hub, "sam", PASSWORD)
    assert resp.status == 423 and (await resp.json())["error"] == "account_locked"
    resp = await hub.post("/v1/users/sam/unlock", headers=bearer(admin))
    assert resp.status == 204
    assert (await _attempt(hub, "sam", PASSWORD)).status == 200
    kinds = [e["kind"] for e in await _events(hub, admin, username="sam")]
    assert {"account_locked", "login_locked", "unlocked", "login"} <= set(kinds)


async def test_one_address_guessing_many_accounts_is_throttled(hub_with, clock):
    hub = await hub_with(login_address_free_failures=4)
    for name in ("ann", "ben"):
        await add_user(hub, name, Role.AGENT, agent_id="alice")
    for name in ("u1", "u2", "u3", "u4"):  # each account only once: only the address adds up
        assert (await _attempt(hub, name, "guess")).status == 401
    resp = await _attempt(hub, "ann", PASSWORD)
    assert resp.status == 429
    clock.shift(timedelta(minutes=2))
    assert (await _attempt(hub, "ben", PASSWORD)).status == 200


async def test_a_password_change_ends_the_other_sessions(hub_with, clock):
    hub = await hub_with()
    await add_user(hub, "sam", Role.SUPERVISOR)
    mine, other = await login(hub, "sam"), await login(hub, "sam")
    resp = await hub.post("/v1/auth/password", headers=bearer(mine),
                          json={"current_password": "not it", "new_password": NEW_PASSWORD})
    assert resp.status == 422 and (await resp.json())["fields"][0]["field"] == "current_password"
    resp = await hub.post("/v1/auth/password", headers=bearer(mine),
                          json={"current_password": PASSWORD, "new_password": "short"})
    assert resp.status == 422 and (await resp.json())["fields"][0]["field"] == "new_password"
    resp = await hub.post("/v1/auth/password", headers=bearer(mine),
                          json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert resp.status == 204, await resp.text()
    assert (await hub.get("/v1/auth/me", headers=bearer(mine))).status == 200
    assert (await hub.get("/v1/auth/me", headers=bearer(other))).status == 401
    assert (await _attempt(hub, "sam", PASSWORD)).status == 401
    assert (await _attempt(hub, "sam", NEW_PASSWORD)).status == 200


async def test_an_api_key_has_no_password_to_change(hub_with, clock):
    hub = await hub_with()
    key = await add_key(hub, "crm", Scope.PROFILES_READ)
    resp = await hub.post("/v1/auth/password", headers=bearer(key),
                          json={"current_password": "x", "new_password": NEW_PASSWORD})
    assert resp.status == 403


async def test_key_use_is_logged_once_per_interval_and_events_page(hub_with, clock):
    hub = await hub_with(key_use_interval_s=300)
    crm = await add_key(hub, "crm", Scope.PROFILES_READ)
    admin = await add_key(hub, "admin", Scope.ADMIN)
    for _ in range(3):
        assert (await hub.get("/v1/auth/me", headers=bearer(crm))).status == 200
    used = [e for e in await _events(hub, admin) if e["kind"] == "key_used" and e["key_name"] == "crm"]
    assert len(used) == 1
    clock.shift(timedelta(minutes=6))
    assert (await hub.get("/v1/auth/me", headers=bearer(crm))).status == 200
    used = [e for e in await _events(hub, admin) if e["kind"] == "key_used" and e["key_name"] == "crm"]
    assert len(used) == 2
    first = await hub.get("/v1/security/events", params={"limit": "1"}, headers=bearer(admin))
    page = await first.json()
    assert len(page["items"]) == 1 and page["next"]
    second = await (await hub.get("/v1/security/events", params={"limit": "1", "cursor": page["next"]},
                                  headers=bearer(admin))).json()
    assert second["items"][0]["id"] < page["items"][0]["id"]
    resp = await hub.get("/v1/security/events", params={"limit": "0"}, headers=bearer(admin))
    assert resp.status == 422 and (await resp.json())["fields"][0]["field"] == "limit"
    resp = await hub.get("/v1/security/events", headers=bearer(crm))
    assert resp.status == 403


# --- the policy alone: a state machine, property-tested ---
POLICY = ThrottlePolicy(free_failures=5, base_delay_s=30, max_delay_s=900, lockout_failures=20,
                        forget_after_s=3600)
gaps = st.lists(st.floats(min_value=0, max_value=7200, allow_nan=False), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(gaps)
def test_policy_blocks_only_past_the_allowance_and_never_longer_than_the_cap(gap_list):
    state, now = Attempts(), T0
    for gap in gap_list:
        now += timedelta(seconds=gap)
        before = throttle.current(POLICY, state, now)
        state = throttle.after_failure(POLICY, state, now)
        assert state.failures == before.failures + 1
        wait = throttle.wait_s(POLICY, state, now)
        if state.locked_out_at is not None:
            assert wait == float("inf") and state.failures >= POLICY.lockout_failures
        elif state.failures <= POLICY.free_failures - 1:
            assert wait == 0
        else:
            assert 0 < wait <= POLICY.max_delay_s
    # A lockout outlives any wait; anything else is forgotten after forget_after_s.
    later = now + timedelta(seconds=POLICY.forget_after_s)
    if state.locked_out_at is None:
        assert throttle.wait_s(POLICY, state, later) == 0
        assert throttle.current(POLICY, state, later) == Attempts()
    else:
        assert throttle.wait_s(POLICY, state, later) == float("inf")


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=60))
def test_policy_without_lockout_never_locks(n):
    policy = ThrottlePolicy(free_failures=3, base_delay_s=1, max_delay_s=60, lockout_failures=None,
                            forget_after_s=3600)
    state = Attempts()
    for i in range(n):
        state = throttle.after_failure(policy, state, T0 + timedelta(seconds=i))
    assert state.locked_out_at is None and state.failures == n
