"""Logging in with a password, changing it, and unlocking an account: the paths a password guesser
attacks, so each one goes through the throttle (hub.access.throttle) and the security log.

Order matters: a blocked account or address is refused before its password is checked (the check
is what a guesser wants), and a refused attempt never says whether the user exists.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.access import security_log, store, throttle
from hub.access.passwords import dummy_hash, hash_password, verify_password
from hub.access.security_log import SecurityEvent
from hub.settings import AuthSettings
from hub.storage.engine import writer


class LoginThrottled(Exception):
    """Too many recent failures for this account or address: try again after `retry_after_s`."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"retry after {retry_after_s:.0f}s")
        self.retry_after_s = max(1, math.ceil(retry_after_s))


class AccountLocked(Exception):
    """The account is locked until an admin unlocks it."""


class PasswordRejected(ValueError):
    """The new password is not acceptable (the message says why)."""


@dataclass(frozen=True, slots=True)
class LoginPolicies:
    account: throttle.ThrottlePolicy
    address: throttle.ThrottlePolicy

    @classmethod
    def from_settings(cls, s: AuthSettings) -> LoginPolicies:
        account = throttle.ThrottlePolicy(free_failures=s.login_free_failures, base_delay_s=s.login_base_delay_s,
                                          max_delay_s=s.login_max_delay_s, lockout_failures=s.login_lockout_failures,
                                          forget_after_s=s.login_forget_after_s)
        address = throttle.ThrottlePolicy(free_failures=s.login_address_free_failures,
                                          base_delay_s=s.login_base_delay_s, max_delay_s=s.login_max_delay_s,
                                          lockout_failures=None, forget_after_s=s.login_forget_after_s)
        return cls(account, address)


class Logins:
    def __init__(self, settings: AuthSettings, engine: Callable[[], AsyncEngine]) -> None:
        self.settings = settings
        self.policies = LoginPolicies.from_settings(settings)
        self._engine = engine

    async def check_password(self, username: str, password: str, client: str | None) -> store.UserRow | None:
        """The user when `password` is theirs and they may log in; None for a wrong password, an unknown
        or a disabled user (the caller can't tell which). Raises LoginThrottled or AccountLocked before
        checking anything while the account or the address is blocked."""
        now = datetime.now(UTC)
        user_key, addr_key = throttle.account_key(username), throttle.address_key(client or "unknown")
        async with self._engine().connect() as conn:
            user = await store.get_user(conn, username)
            account = await throttle.read(conn, user_key)
            address = await throttle.read(conn, addr_key)
        wait = max(throttle.wait_s(self.policies.account, account, now),
                   throttle.wait_s(self.policies.address, address, now))
        if wait > 0:
            locked = math.isinf(wait)
            await self._event(SecurityEvent(security_log.LOGIN_LOCKED if locked else security_log.LOGIN_THROTTLED,
                                            now, username=username, client=client))
            raise AccountLocked() if locked else LoginThrottled(wait)
        stored = user.password_hash if user is not None else dummy_hash()
        # scrypt takes ~50 ms of CPU: off the event loop.
        good = await asyncio.to_thread(verify_password, password, stored)
        if user is not None and good and user.disabled_at is None:
            async with writer(self._engine()).begin() as conn:  # type: ignore[union-attr]
                await throttle.clear(conn, user_key)
            return user
        async with writer(self._engine()).begin() as conn:  # type: ignore[union-attr]
            after = await throttle.record_failure(conn, self.policies.account, user_key, now)
            await throttle.record_failure(conn, self.policies.address, addr_key, now)
            await security_log.record(conn, SecurityEvent(security_log.LOGIN_FAILED, now, username=username,
                                                          client=client))
            if after.locked_out_at == now:
                await security_log.record(conn, SecurityEvent(security_log.ACCOUNT_LOCKED, now, username=username,
                                                              client=client))
        return None

    async def start_session(self, user: store.UserRow, token_sha256: str, client: str | None) -> datetime:
        now = datetime.now(UTC)
        expires_at = now + timedelta(seconds=self.settings.token_ttl_s)
        async with writer(self._engine()).begin() as conn:  # type: ignore[union-attr]
            await store.add_session(conn, token_sha256=token_sha256, username=user.username, now=now,
                                    expires_at=expires_at)
            await security_log.record(conn, SecurityEvent(security_log.LOGIN, now, username=user.username,
                                                          client=client))
        return expires_at

    async def change_password(self, username: str, current: str, new: str, *, keep_session: str | None,
                              client: str | None) -> bool:
        """Set a new password when `current` is right (throttled like a login) and end every other
        session of the user; False for a wrong current password."""
        self.check_new_password(new, current)
        user = await self.check_password(username, current, client)
        if user is None:
            await self._event(SecurityEvent(security_log.PASSWORD_CHANGE_FAILED, datetime.now(UTC),
                                            username=username, client=client))
            return False
        hashed = await asyncio.to_thread(hash_password, new)
        async with writer(self._engine()).begin() as conn:  # type: ignore[union-attr]
            await store.set_password(conn, username, hashed)
            await store.end_sessions(conn, username, keep=keep_session)
            await security_log.record(conn, SecurityEvent(security_log.PASSWORD_CHANGED, datetime.now(UTC),
                                                          username=username, client=client))
        return True

    def check_new_password(self, new: str, current: str | None = None) -> None:
        if len(new) < self.settings.password_min_length:
            raise PasswordRejected(f"a password needs at least {self.settings.password_min_length} characters")
        if current is not None and new == current:
            raise PasswordRejected("the new password is the current one")

    async def unlock(self, username: str, actor: str) -> bool:
        """Clear an account's failures and lockout; False when it had none."""
        async with writer(self._engine()).begin() as conn:  # type: ignore[union-attr]
            return await unlock(conn, username, actor)

    async def _event(self, event: SecurityEvent) -> None:
        async with writer(self._engine()).begin() as conn:  # type: ignore[union-attr]
            await security_log.record(conn, event)


async def unlock(conn, username: str, actor: str) -> bool:
    """In the caller's transaction (the CLI has one): clear the account's throttle and log who did it."""
    cleared = await throttle.clear(conn, throttle.account_key(username))
    if cleared:
        await security_log.record(conn, SecurityEvent(security_log.UNLOCKED, datetime.now(UTC), username=username,
                                                      actor=actor))
    return cleared
