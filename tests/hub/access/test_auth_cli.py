"""`omnihub users` and `omnihub keys`, run as the real command against a SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

from sqlalchemy import select

from hub.access.auth import digest, verify_password
from hub.storage.auth_models import api_keys, login_attempts, security_events, users
from hub.storage.engine import create_engine
from tests.hub.test_cli import run


def _rows(url: str, table) -> list[dict]:
    async def read() -> list[dict]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return [dict(r._mapping) for r in await conn.execute(select(table))]
        finally:
            await engine.dispose()
    return asyncio.run(read())


def test_users_add_and_list(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/hub.db"
    env = {"OMNIHUB_DATABASE_URL": url}
    omnihub = run("--help").args[0]  # the installed `omnihub` next to this interpreter
    added = subprocess.run([omnihub, "users", "add", "ann", "--role", "agent", "--agent-id", "alice",
                            "--password-stdin"], input="s3cret-pass\n", capture_output=True, text=True,
                           env={**os.environ, **env}, timeout=60)
    assert added.returncode == 0, added.stderr
    assert "s3cret-pass" not in added.stdout + added.stderr
    stored = _rows(url, users)[0]
    assert stored["agent_id"] == "alice" and stored["role"] == "agent"
    assert "s3cret-pass" not in stored["password_hash"] and verify_password("s3cret-pass", stored["password_hash"])
    listed = run("users", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    [user] = json.loads(listed.stdout)
    assert user["username"] == "ann" and user["role"] == "agent" and "password_hash" not in user
    # An agent needs its agent id; a supervisor has none; the same name twice is refused.
    assert run("users", "add", "bo", "--role", "agent", "--password-stdin", env=env).returncode != 0
    assert run("users", "add", "sue", "--role", "supervisor", "--agent-id", "x", env=env).returncode != 0
    again = subprocess.run([omnihub, "users", "add", "ann", "--role", "admin", "--password-stdin"],
                           input="another-pass\n", capture_output=True, text=True,
                           env={**os.environ, **env}, timeout=60)
    assert again.returncode == 1 and "exists" in again.stderr
    assert run("users", "disable", "ann", env=env).returncode == 0
    assert json.loads(run("users", "list", "--json", env=env).stdout)[0]["disabled_at"] is not None


def test_keys_create_list_revoke(tmp_path):
    env = {"OMNIHUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/hub.db"}
    created = run("keys", "create", "shop", "--scope", "interactions:write", "--scope", "profiles:read",
                  "--json", env=env)
    assert created.returncode == 0, created.stderr
    shown = json.loads(created.stdout)
    assert shown["name"] == "shop" and shown["scopes"] == ["interactions:write", "profiles:read"]
    assert shown["key"].startswith("ohk_")
    [row] = _rows(env["OMNIHUB_DATABASE_URL"], api_keys)
    assert row["key_sha256"] == digest(shown["key"]) and shown["key"] not in str(row)
    plain = run("keys", "create", "crm", "--scope", "profiles:read", env=env)
    assert plain.returncode == 0 and plain.stdout.strip().startswith("ohk_")
    assert run("keys", "create", "bad", "--scope", "everything", env=env).returncode == 2
    listed = json.loads(run("keys", "list", "--json", env=env).stdout)
    assert [k["name"] for k in listed] == ["crm", "shop"] and all("key" not in k for k in listed)
    assert run("keys", "revoke", "shop", env=env).returncode == 0
    assert run("keys", "revoke", "shop", env=env).returncode == 1  # already revoked
    listed = {k["name"]: k for k in json.loads(run("keys", "list", "--json", env=env).stdout)}
    assert listed["shop"]["revoked_at"] is not None and listed["crm"]["revoked_at"] is None


def _lock_out(url: str, username: str) -> None:
    """Lock `username` as twenty wrong passwords would (the throttle's own statement)."""
    from datetime import UTC, datetime

    from hub.access import throttle
    from hub.access.logins import LoginPolicies
    from hub.settings import AuthSettings

    async def lock() -> None:
        engine = create_engine(url)
        policy = LoginPolicies.from_settings(AuthSettings()).account
        try:
            async with engine.begin() as conn:
                for _ in range(policy.lockout_failures or 0):
                    await throttle.record_failure(conn, policy, throttle.account_key(username), datetime.now(UTC))
        finally:
            await engine.dispose()
    asyncio.run(lock())


def test_users_unlock_and_password(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/hub.db"
    env = {"OMNIHUB_DATABASE_URL": url}
    omnihub = run("--help").args[0]
    added = subprocess.run([omnihub, "users", "add", "ann", "--role", "supervisor", "--password-stdin"],
                           input="first-password\n", capture_output=True, text=True, env={**os.environ, **env},
                           timeout=60)
    assert added.returncode == 0, added.stderr
    _lock_out(url, "ann")
    [attempts] = _rows(url, login_attempts)
    assert attempts["locked_out_at"] is not None
    unlocked = run("users", "unlock", "ann", env=env)
    assert unlocked.returncode == 0, unlocked.stderr
    assert _rows(url, login_attempts) == []
    assert run("users", "unlock", "ann", env=env).returncode == 1  # nothing left to clear
    changed = subprocess.run([omnihub, "users", "password", "ann", "--password-stdin"], input="second-password\n",
                             capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
    assert changed.returncode == 0, changed.stderr
    assert verify_password("second-password", _rows(url, users)[0]["password_hash"])
    kinds = [e["kind"] for e in _rows(url, security_events)]
    assert "unlocked" in kinds and "password_changed" in kinds
    nobody = subprocess.run([omnihub, "users", "password", "nobody", "--password-stdin"], input="whatever-pass\n",
                            capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
    assert nobody.returncode == 1
