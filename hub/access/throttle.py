"""Login throttling: per account and per client address, exponential, with an account lockout.

A password guesser gets `free_failures` tries; after that every further failure blocks the next
attempt for `base_delay_s`, doubling up to `max_delay_s`. While blocked, an attempt is refused before
its password is even checked, so the right password waits too (otherwise the block would only slow
the guesses that fail). An account that reaches `lockout_failures` consecutive failures stays locked
until an admin unlocks it (`omnihub users unlock`, `POST /v1/users/{name}/unlock`). A client address
gets the same backoff with a higher allowance and no lockout: an address can't be "unlocked", and one
office behind a NAT shares it. A success clears the account's count, not the address's: one valid
account must not reset the counter an attacker is spending on others.

The state lives in the database (login_attempts), so every hub process behind a load balancer sees
the same counts. The policy itself is pure (`Attempts` in, `Attempts` out) and property-tested.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.storage.auth_models import login_attempts


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    free_failures: int
    base_delay_s: float
    max_delay_s: float
    lockout_failures: int | None  # None: never locks out (client addresses)
    forget_after_s: float  # failures this old are forgotten


@dataclass(frozen=True, slots=True)
class Attempts:
    failures: int = 0
    last_failure_at: datetime | None = None
    blocked_until: datetime | None = None
    locked_out_at: datetime | None = None


def current(policy: ThrottlePolicy, state: Attempts, now: datetime) -> Attempts:
    """The state as of `now`: failures older than `forget_after_s` are forgotten (a lockout is not)."""
    if (state.locked_out_at is None and state.last_failure_at is not None
            and now - state.last_failure_at >= timedelta(seconds=policy.forget_after_s)):
        return Attempts()
    return state


def wait_s(policy: ThrottlePolicy, state: Attempts, now: datetime) -> float:
    """Seconds before the next attempt may be checked: 0 now, `inf` while locked out."""
    state = current(policy, state, now)
    if state.locked_out_at is not None:
        return float("inf")
    if state.blocked_until is None or state.blocked_until <= now:
        return 0.0
    return (state.blocked_until - now).total_seconds()


def after_failure(policy: ThrottlePolicy, state: Attempts, now: datetime) -> Attempts:
    state = current(policy, state, now)
    failures = state.failures + 1
    locked = state.locked_out_at
    if locked is None and policy.lockout_failures is not None and failures >= policy.lockout_failures:
        locked = now
    blocked = state.blocked_until
    over = failures - policy.free_failures
    if over >= 0:
        delay = min(policy.max_delay_s, policy.base_delay_s * 2 ** min(over, 32))
        blocked = now + timedelta(seconds=delay)
    return replace(state, failures=failures, last_failure_at=now, blocked_until=blocked, locked_out_at=locked)


def account_key(username: str) -> str:
    return f"user:{username}"


def address_key(address: str) -> str:
    return f"addr:{address}"


# --- the table ---
async def read(conn: AsyncConnection, key: str, *, for_update: bool = False) -> Attempts:
    stmt = select(login_attempts).where(login_attempts.c.key == key)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is None:
        return Attempts()
    return Attempts(failures=row.failures, last_failure_at=row.last_failure_at, blocked_until=row.blocked_until,
                    locked_out_at=row.locked_out_at)


async def record_failure(conn: AsyncConnection, policy: ThrottlePolicy, key: str, now: datetime) -> Attempts:
    """Count one failure for `key` in the caller's (write) transaction; the new state."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    # The row first (no-op if it exists), then a locked read: two hubs counting at once both count.
    await conn.execute(insert(login_attempts).values(key=key, failures=0, last_failure_at=now)
                       .on_conflict_do_nothing(index_elements=["key"]))
    state = after_failure(policy, await read(conn, key, for_update=True), now)
    await conn.execute(update(login_attempts).where(login_attempts.c.key == key).values(
        failures=state.failures, last_failure_at=state.last_failure_at, blocked_until=state.blocked_until,
        locked_out_at=state.locked_out_at))
    return state


async def clear(conn: AsyncConnection, key: str) -> bool:
    """Forget `key`'s failures and lockout; False when there was nothing to forget."""
    result = await conn.execute(delete(login_attempts).where(login_attempts.c.key == key))
    return result.rowcount > 0
