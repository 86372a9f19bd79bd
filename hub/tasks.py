"""The hub's background loops, supervised: one mechanism for every long-running loop (the outbox
relay, the outbound dispatcher, scheduled sends, campaigns, the rules scheduler, the router, the
back-office command consumer).

A `Supervised` loop runs its body for as long as the hub runs. The body may raise anything: the
loop logs the first failure of an outage once (WARNING, with its stack), retries with exponential
backoff and jitter (tenacity, capped at `LoopPolicy.backoff_max_s`), and logs once more (INFO,
"recovered after N s") when the body reports progress again; the attempts in between are counted,
not logged. The body says how it is doing with `progressed()` (it did a round of work, or looked
and found none; only a whole round counts, so a body that fails half-way keeps backing off),
`working()` (part of a long round went well) and `waiting()` (it is waiting for work, so no
progress for a while is not a hang).
`status()` is what /readyz shows: running, failing since T with the error's type, stuck (busy
with no progress past `stuck_after_s`), or stopped, with the time of the last progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_never,
    wait_exponential,
    wait_random_exponential,
)

log = logging.getLogger("omnihub.loops")


async def cancel_and_wait(task: asyncio.Task[object] | None) -> None:
    """Cancel a service's background task and wait until it has unwound."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class LoopState(StrEnum):
    STARTING = "starting"  # no progress yet, no failure either
    RUNNING = "running"
    FAILING = "failing"  # the body raised and has not made progress since
    STUCK = "stuck"  # busy (not waiting for work) with no progress for stuck_after_s
    STOPPED = "stopped"  # not started, stopped, or its task ended


HEALTHY = frozenset({LoopState.STARTING, LoopState.RUNNING})


@dataclasses.dataclass(frozen=True)
class LoopPolicy:
    backoff_initial_s: float = 0.1
    # Caps the wait between attempts, so work resumes at most this long after a service returns.
    backoff_max_s: float = 5.0
    stuck_after_s: float = 120.0

    def wait(self) -> Any:
        # "Equal jitter": half of each wait grows exponentially, the other half is random, so hubs
        # that lost the same service do not come back in step.
        half, cap = self.backoff_initial_s / 2, self.backoff_max_s / 2
        return wait_exponential(multiplier=half, max=cap) + wait_random_exponential(multiplier=half, max=cap)


class Supervised:
    """One long-running loop: runs `body` again whenever it raises, never more than one failure
    line and one recovery line per outage. `body` returning means a round is done: it is called
    again at once (it does its own waiting, inside `waiting()`)."""

    def __init__(self, name: str, body: Callable[[], Awaitable[None]], *, policy: LoopPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.policy = policy or LoopPolicy()
        self._body = body
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._state = LoopState.STOPPED
        self._since = datetime.now(UTC)  # when the current state began
        self._error: str | None = None  # the failing error's type
        self._failed_at = 0.0  # clock() at the first failure of the outage
        self.failures = 0  # attempts that failed in the current outage
        self.progress_count = 0
        self.last_progress_at: datetime | None = None
        self._busy_since = clock()  # clock() of the last progress, or the end of the last wait
        self._waiting = 0

    # --- what the body reports -------------------------------------------------------------------

    def progressed(self) -> None:
        """A round of work succeeded (or found nothing to do): the loop is healthy."""
        self.progress_count += 1
        self.last_progress_at = datetime.now(UTC)
        self._busy_since = self._clock()
        if self._state is LoopState.FAILING:
            log.info("%s recovered after %.1f s", self.name, self._clock() - self._failed_at,
                     extra={"loop": self.name, "error": self._error, "attempts": self.failures})
        if self._state is not LoopState.RUNNING and self._task is not None:
            self._enter(LoopState.RUNNING)
            self._error, self.failures = None, 0

    def working(self) -> None:
        """Part of a long round succeeded: not stuck. Not a recovery: only a whole round is."""
        self._busy_since = self._clock()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Around a wait for work (a poll interval, a wake-up, the next delivery): however long it
        lasts, the loop is not stuck."""
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1
            self._busy_since = self._clock()

    def failed(self, exc: BaseException) -> None:
        """Record a failure: the body's, or one of work the loop handed to a task of its own. Logged
        only when it starts an outage."""
        self.failures += 1
        self._error = type(exc).__name__  # the latest: what the loop waits for may change mid-outage
        if self._state is LoopState.FAILING:
            log.debug("%s still failing", self.name, exc_info=exc, extra={"loop": self.name})
            return
        self._failed_at = self._clock()
        self._enter(LoopState.FAILING)
        log.warning("%s failing; retrying with backoff until it recovers: %s", self.name, _describe(exc),
                    exc_info=exc, extra={"loop": self.name, "error": self._error})

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._enter(LoopState.STARTING)
        self._busy_since = self._clock()
        self._task = asyncio.create_task(self._run(), name=f"omnihub-{self.name}")
        self._task.add_done_callback(self._ended)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._enter(LoopState.STOPPED)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Only a BaseException other than cancellation gets here (Exception is retried).
            log.error("%s ended", self.name, exc_info=task.exception(), extra={"loop": self.name})
        self._enter(LoopState.STOPPED)

    async def _run(self) -> None:
        pending: Exception | None = None
        while True:
            # A fresh schedule per outage: a failure after the loop worked again starts at the
            # shortest wait, not where the last outage left off.
            retrying = AsyncRetrying(retry=retry_if_exception_type(Exception), stop=stop_never,
                                     wait=self.policy.wait(), reraise=True)
            async for attempt in retrying:
                with attempt:
                    if pending is not None:  # the failure that ended a healthy stretch: wait first
                        exc, pending = pending, None
                        raise exc
                    pending = await self._attempt()

    async def _attempt(self) -> Exception | None:
        """Run the body once. Raises its failure when it made no progress (the backoff grows);
        returns it when it did (the next outage starts a fresh backoff); None when it returned."""
        before = self.progress_count
        try:
            await self._body()
        except Exception as exc:
            self.failed(exc)
            if self.progress_count != before:
                return exc
            raise
        self.progressed()
        await asyncio.sleep(0)  # a body that returns at once must not starve the event loop
        return None

    # --- what /readyz shows ----------------------------------------------------------------------

    @property
    def state(self) -> LoopState:
        if (self._state in HEALTHY and not self._waiting
                and self._clock() - self._busy_since > self.policy.stuck_after_s):
            return LoopState.STUCK
        return self._state

    def status(self) -> dict[str, Any]:
        state = self.state
        since = self._since
        if state is LoopState.STUCK:
            since = self.last_progress_at or self._since
        return {"state": state.value, "since": _rfc3339(since), "error": self._error,
                "failures": self.failures, "last_progress_at": _rfc3339(self.last_progress_at)}

    def _enter(self, state: LoopState) -> None:
        if state is not self._state:
            self._state = state
            self._since = datetime.now(UTC)


class Loops:
    """The hub's supervised loops by name, for /readyz; each registered with the hub's policy."""

    def __init__(self, policy: LoopPolicy | None = None) -> None:
        self.policy = policy or LoopPolicy()
        self._loops: dict[str, Supervised] = {}

    def add(self, loop: Supervised, **policy: float) -> Supervised:
        """Register `loop`, giving it the hub's policy with `policy`'s fields replaced."""
        loop.policy = dataclasses.replace(self.policy, **policy)
        self._loops[loop.name] = loop
        return loop

    def __iter__(self) -> Iterator[Supervised]:
        return iter(self._loops.values())

    def status(self) -> dict[str, dict[str, Any]]:
        return {loop.name: loop.status() for loop in self}

    def ready(self) -> bool:
        return all(loop.state in HEALTHY for loop in self)


class PollingWorker:
    """A service that runs `step()` in the background: again at once while a step says there is
    more to do, else after `notify()` or `poll_interval_s`, and never more often than
    `min_interval_s` (a notify may come after every ingest commit)."""

    name = "omnihub-worker"

    def __init__(self, *, poll_interval_s: float, min_interval_s: float = 0.0) -> None:
        self._poll = poll_interval_s
        self._min_interval = min_interval_s
        self._wake = asyncio.Event()
        self.supervised = Supervised(self.name.removeprefix("omnihub-"), self._rounds)

    async def step(self) -> bool:
        """One round of work; True when there is more to do right away."""
        raise NotImplementedError

    def notify(self) -> None:
        """Something was committed: look now, not at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        await self.supervised.start()

    async def stop(self) -> None:
        await self.supervised.stop()

    async def _rounds(self) -> None:
        while True:
            self._wake.clear()
            more = await self.step()
            self.supervised.progressed()
            if not more:
                with self.supervised.waiting():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._poll)
                    if self._min_interval:
                        await asyncio.sleep(self._min_interval)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _rfc3339(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")
