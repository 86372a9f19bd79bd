"""The supervision mechanism every background loop runs on (hub.tasks), on its own: what it logs
per outage, how it backs off, what it reports. The loops themselves against a real database that
goes away are in test_tasks_db_outage.py."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tenacity import RetryCallState

from hub.tasks import LoopPolicy, Loops, Supervised
from tests.hub.conftest import eventually

FAST = LoopPolicy(backoff_initial_s=0.001, backoff_max_s=0.004)


def loop_lines(records: list[logging.LogRecord], name: str) -> list[tuple[str, str]]:
    """(level, first word after the loop's name) of the lines a loop wrote at INFO and above."""
    return [(r.levelname, r.getMessage().split()[1].rstrip(";"))
            for r in records if r.name == "omnihub.loops" and getattr(r, "loop", None) == name
            and r.levelno >= logging.INFO]


class Scripted:
    """A body that plays a script of rounds: 'fail' raises, 'ok' reports progress; then it waits."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.done = asyncio.Event()
        self.supervised = Supervised("scripted", self.body, policy=FAST)

    async def body(self) -> None:
        while self.script:
            match self.script.pop(0):
                case "fail":
                    raise ConnectionRefusedError("database away")
                case _:
                    self.supervised.progressed()
        self.done.set()
        with self.supervised.waiting():
            await asyncio.Event().wait()


async def test_an_outage_is_one_failure_line_and_one_recovery_line_however_many_attempts(caplog):
    caplog.set_level(logging.DEBUG, "omnihub.loops")
    body = Scripted(["ok"] + ["fail"] * 12 + ["ok"])
    await body.supervised.start()
    try:
        await asyncio.wait_for(body.done.wait(), 10)
        status = body.supervised.status()
    finally:
        await body.supervised.stop()
    assert loop_lines(caplog.records, "scripted") == [("WARNING", "failing"), ("INFO", "recovered")]
    failing = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert failing.exc_info is not None and failing.error == "ConnectionRefusedError"
    recovered = next(r for r in caplog.records if r.levelno == logging.INFO)
    assert recovered.attempts == 12
    assert status["state"] == "running" and status["error"] is None and status["last_progress_at"]
    assert body.supervised.status()["state"] == "stopped"


async def test_a_failing_loop_says_since_when_and_why_and_makes_the_hub_not_ready():
    loops = Loops(FAST)
    gate = asyncio.Event()

    async def body() -> None:
        if not gate.is_set():
            raise TimeoutError("statement timed out")
        supervised.progressed()
        with supervised.waiting():
            await asyncio.Event().wait()

    supervised = loops.add(Supervised("db-bound", body))
    await supervised.start()
    try:
        await eventually(lambda: _true(supervised.failures >= 3))
        status = loops.status()["db-bound"]
        assert status["state"] == "failing" and status["error"] == "TimeoutError"
        assert status["since"].endswith("Z") and status["last_progress_at"] is None
        assert not loops.ready()
        gate.set()
        await eventually(lambda: _true(loops.ready()))
        assert loops.status()["db-bound"]["state"] == "running"
    finally:
        await supervised.stop()


async def _true(value: bool) -> bool:
    return value


@dataclasses.dataclass(frozen=True)
class Recording(LoopPolicy):
    """The hub's policy, noting which attempt of its outage each wait follows."""

    attempts: list[int] = dataclasses.field(default_factory=list)

    def wait(self):
        inner = super().wait()

        def wait(state: RetryCallState) -> float:
            self.attempts.append(state.attempt_number)
            return inner(state)

        return wait


async def test_the_backoff_grows_within_an_outage_and_starts_over_after_a_recovery():
    policy = Recording(backoff_initial_s=0.001, backoff_max_s=0.004)
    body = Scripted(["fail"] * 4 + ["ok"] * 3 + ["fail"] * 2 + ["ok"])
    body.supervised.policy = policy
    await body.supervised.start()
    try:
        await asyncio.wait_for(body.done.wait(), 10)
    finally:
        await body.supervised.stop()
    # The second outage waits as briefly as the first began, however long the first lasted.
    assert policy.attempts == [1, 2, 3, 4, 1, 2]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.floats(0.01, 2.0), st.floats(0.5, 600.0))
def test_each_wait_is_capped_and_grows_with_the_attempt(attempt, initial, cap):
    policy = LoopPolicy(backoff_initial_s=initial, backoff_max_s=max(cap, initial))
    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = attempt
    waits = [policy.wait()(state) for _ in range(5)]
    assert all(0 < w <= policy.backoff_max_s for w in waits)
    # Half of each wait is the exponential part: never below it, so retries do spread out.
    floor = min(initial / 2 * 2 ** (attempt - 1), policy.backoff_max_s / 2)
    assert all(w >= floor * 0.999 for w in waits)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["ok", "fail"]), min_size=1, max_size=30))
def test_log_lines_follow_the_outages_whatever_the_sequence(script):
    """A property of the state machine: one failure line per run of failures, one recovery line
    per run of failures that a success ends; nothing per attempt."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    async def run() -> None:
        body = Scripted(script)
        await body.supervised.start()
        try:
            await asyncio.wait_for(body.done.wait(), 10)
        finally:
            await body.supervised.stop()

    logger = logging.getLogger("omnihub.loops")
    handler, level = Keep(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        asyncio.run(run())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    runs = "".join("f" if step == "fail" else "o" for step in script)
    outages = [chunk for chunk in runs.replace("o", " o ").split() if chunk.startswith("f")]
    ended = len(outages) - (1 if runs.endswith("f") else 0)
    lines = loop_lines(records, "scripted")
    assert lines.count(("WARNING", "failing")) == len(outages)
    assert lines.count(("INFO", "recovered")) == ended
    assert len(lines) == len(outages) + ended


async def test_a_loop_busy_without_progress_past_the_threshold_is_stuck_and_one_waiting_is_not():
    now = [0.0]
    loops = Loops(LoopPolicy(stuck_after_s=60))
    hang, wait = asyncio.Event(), asyncio.Event()

    async def hung() -> None:
        busy.progressed()
        await hang.wait()  # e.g. a query on a connection that went silent
        busy.progressed()
        with busy.waiting():
            await asyncio.Event().wait()

    async def idle() -> None:
        idler.progressed()
        with idler.waiting():
            await wait.wait()  # e.g. the next delivery, which may take hours

    busy = loops.add(Supervised("hung", hung, clock=lambda: now[0]))
    idler = loops.add(Supervised("idle", idle, clock=lambda: now[0]))
    await busy.start()
    await idler.start()
    try:
        await eventually(lambda: _true(busy.progress_count == 1 and idler.progress_count == 1))
        now[0] = 59.0
        assert loops.ready()
        now[0] = 61.0
        assert loops.status()["hung"]["state"] == "stuck"
        assert loops.status()["idle"]["state"] == "running"
        assert not loops.ready()
        hang.set()  # the query answers: progress again
        await eventually(lambda: _true(loops.status()["hung"]["state"] == "running"))
        assert loops.ready()
    finally:
        await busy.stop()
        await idler.stop()


async def test_a_stopped_loop_is_reported_and_the_hub_not_ready():
    loops = Loops(FAST)
    supervised = loops.add(Supervised("short", _forever))
    await supervised.start()
    await supervised.stop()
    assert loops.status()["short"]["state"] == "stopped"
    assert not loops.ready()


async def _forever() -> None:
    await asyncio.Event().wait()


@pytest.mark.parametrize("error", [KeyError("x"), ValueError("bad row"), RuntimeError("bug")])
async def test_any_exception_is_survived(error, caplog):
    caplog.set_level(logging.INFO, "omnihub.loops")
    raised = []

    async def body() -> None:
        if not raised:
            raised.append(error)
            raise error
        supervised.progressed()
        with supervised.waiting():
            await asyncio.Event().wait()

    supervised = Supervised("any", body, policy=FAST)
    await supervised.start()
    try:
        await eventually(lambda: _true(supervised.state.value == "running"))
    finally:
        await supervised.stop()
    assert loop_lines(caplog.records, "any") == [("WARNING", "failing"), ("INFO", "recovered")]
