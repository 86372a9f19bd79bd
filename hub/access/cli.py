"""`omnihub users add|list|disable|unlock|password` and `omnihub keys create|list|revoke` (hub.access.auth), on the
database of the hub's config. Passwords come from a prompt or `--password-stdin`, never an argument
(it would sit in the shell history and the process list); a key is printed once and stored hashed."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access import logins, security_log, store
from hub.access.auth import KEY_PREFIX, Role, Scope, new_secret
from hub.access.passwords import hash_password
from hub.access.security_log import SecurityEvent
from hub.settings import load_settings
from hub.storage.engine import create_engine, writer
from hub.storage.migrate import upgrade

T = TypeVar("T")


def _run(args: argparse.Namespace, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    settings = load_settings(args.config)

    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            await upgrade(engine)
            async with writer(engine).begin() as conn:  # type: ignore[union-attr]
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise SystemExit("omnihub users: the passwords differ")
    if len(password) < 8:
        raise SystemExit("omnihub users: a password needs at least 8 characters")
    return password


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def cmd_users_add(args: argparse.Namespace) -> int:
    role = Role(args.role)
    if role is Role.AGENT and not args.agent_id:
        raise SystemExit("omnihub users add: an agent needs --agent-id (the routing agent it acts as)")
    if role is not Role.AGENT and args.agent_id:
        raise SystemExit(f"omnihub users add: --agent-id is for agents; a {role} is not confined to one")
    hashed = hash_password(_password(args))

    async def add(conn: AsyncConnection) -> None:
        await store.add_user(conn, username=args.name, password_hash=hashed, role=role.value,
                             agent_id=args.agent_id, now=datetime.now(UTC))
    try:
        _run(args, add)
    except IntegrityError:
        print(f"omnihub users add: user {args.name!r} exists", file=sys.stderr)
        return 1
    print(f"added {role} {args.name}" + (f" (agent {args.agent_id})" if args.agent_id else ""))
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    rows = [_plain(r) for r in _run(args, store.list_users)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        state = f"disabled {r['disabled_at']}" if r["disabled_at"] else "active"
        print(f"{r['username']}  {r['role']}  {r['agent_id'] or '-'}  {state}")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    if not _run(args, lambda conn: store.disable_user(conn, args.name, datetime.now(UTC))):
        print(f"omnihub users disable: no active user {args.name!r}", file=sys.stderr)
        return 1
    print(f"disabled {args.name}; its sessions are ended")
    return 0


def cmd_users_unlock(args: argparse.Namespace) -> int:
    if not _run(args, lambda conn: logins.unlock(conn, args.name, actor="cli")):
        print(f"omnihub users unlock: {args.name!r} has no failed logins or lockout to clear", file=sys.stderr)
        return 1
    print(f"unlocked {args.name}")
    return 0


def cmd_users_password(args: argparse.Namespace) -> int:
    hashed = hash_password(_password(args))

    async def reset(conn: AsyncConnection) -> bool:
        if not await store.set_password(conn, args.name, hashed):
            return False
        await store.end_sessions(conn, args.name)
        await logins.unlock(conn, args.name, actor="cli")
        await security_log.record(conn, SecurityEvent(security_log.PASSWORD_CHANGED, datetime.now(UTC),
                                                      username=args.name, actor="cli"))
        return True
    if not _run(args, reset):
        print(f"omnihub users password: no user {args.name!r}", file=sys.stderr)
        return 1
    print(f"set a new password for {args.name}; its sessions are ended")
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    key, key_sha256 = new_secret(KEY_PREFIX)
    scopes = sorted({Scope(s).value for s in args.scope})

    async def add(conn: AsyncConnection) -> None:
        await store.add_key(conn, name=args.name, key_sha256=key_sha256, scopes=scopes, now=datetime.now(UTC))
    try:
        _run(args, add)
    except IntegrityError:
        print(f"omnihub keys create: key {args.name!r} exists", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"name": args.name, "key": key, "scopes": scopes}))
    else:
        print(key)
        print(f"key {args.name} ({' '.join(scopes)}): shown this once, stored only hashed", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    rows = [_plain(r) for r in _run(args, store.list_keys)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        state = f"revoked {r['revoked_at']}" if r["revoked_at"] else "active"
        print(f"{r['name']}  {' '.join(r['scopes'])}  created {r['created_at']}  {state}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    if not _run(args, lambda conn: store.revoke_key(conn, args.name, datetime.now(UTC))):
        print(f"omnihub keys revoke: no live key {args.name!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.name} (hubs that verified it may accept it for up to auth.key_cache_s more)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    config = {"default": argparse.SUPPRESS, "help": "YAML config file"}
    users = sub.add_parser("users", help="people who log in: agents, supervisors, admins")
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    add = users_sub.add_parser("add", help="add a user (the password from a prompt or --password-stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--agent-id", help="for an agent: the routing agent it acts as")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--config", **config)
    add.set_defaults(func=cmd_users_add)
    listing = users_sub.add_parser("list", help="list users (never their passwords)")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--config", **config)
    listing.set_defaults(func=cmd_users_list)
    disable = users_sub.add_parser("disable", help="disable a user and end its sessions")
    disable.add_argument("name")
    disable.add_argument("--config", **config)
    disable.set_defaults(func=cmd_users_disable)
    unlock = users_sub.add_parser("unlock", help="clear a user's lockout and failed-login count")
    unlock.add_argument("name")
    unlock.add_argument("--config", **config)
    unlock.set_defaults(func=cmd_users_unlock)
    password = users_sub.add_parser("password", help="set a user's password (from a prompt or --password-stdin) "
                                    "and end its sessions")
    password.add_argument("name")
    password.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    password.add_argument("--config", **config)
    password.set_defaults(func=cmd_users_password)

    keys_cmd = sub.add_parser("keys", help="API keys for integration clients, with scopes")
    keys_sub = keys_cmd.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    create = keys_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("name")
    create.add_argument("--scope", action="append", required=True, choices=[s.value for s in Scope],
                        help="a scope the key carries (repeat for more)")
    create.add_argument("--json", action="store_true")
    create.add_argument("--config", **config)
    create.set_defaults(func=cmd_keys_create)
    klist = keys_sub.add_parser("list", help="list keys: names, scopes, state (never the keys)")
    klist.add_argument("--json", action="store_true")
    klist.add_argument("--config", **config)
    klist.set_defaults(func=cmd_keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("name")
    revoke.add_argument("--config", **config)
    revoke.set_defaults(func=cmd_keys_revoke)
