"""The command consumer's reconnect loop without a broker: scripted sessions, recorded waits. The
backoff doubles from 0.1 s to backoff_max_s while the broker stays away, starts over once a session
has consumed, and is the same after a failure that is not the broker's (logged with its stack)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hub.backoffice import commands as commands_module
from hub.backoffice.commands import CommandConsumer
from hub.broker.amqp import BrokerUnavailable
from hub.broker.topology import Topology
from hub.settings import BackofficeSettings


class Stop(BaseException):
    """Ends the test's run loop the way a cancellation would: nothing retries it."""


class Engine:
    def execution_options(self, **_):
        return self


def _consumer(script: list[str], closed: list[str]) -> tuple[CommandConsumer, type, type]:
    class Session:
        def __init__(self, *_, **__) -> None:
            self.step = ""

        async def open(self) -> None:
            self.step = script.pop(0)
            match self.step:
                case "refused":
                    raise BrokerUnavailable("connection refused")
                case "crash":
                    raise RuntimeError("PRECONDITION_FAILED")
                case "stop":
                    raise Stop

        async def get(self):
            assert self.step == "lost"
            raise BrokerUnavailable("connection lost")

        async def close(self) -> None:
            closed.append("session")

    class Publisher:
        def __init__(self, *_) -> None:
            pass

        async def connect(self) -> None:
            pass

        async def close(self) -> None:
            closed.append("dead")

    consumer = CommandConsumer(Engine(), url="amqp://x", topology=Topology(),  # type: ignore[arg-type]
                               settings=BackofficeSettings(declare_topology=False),
                               pipeline=None, segments=None, validation_context={},  # type: ignore[arg-type]
                               backoff_max_s=0.3)
    return consumer, Session, Publisher


async def test_backoff_doubles_to_its_cap_and_starts_over_after_a_session_that_consumed(monkeypatch, caplog):
    script = ["refused", "refused", "lost", "refused", "crash", "lost", "stop"]
    closed: list[str] = []
    consumer, session_class, publisher_class = _consumer(script, closed)
    monkeypatch.setattr(commands_module, "ConsumerSession", session_class)
    monkeypatch.setattr(commands_module, "ConfirmPublisher", publisher_class)
    waits: list[tuple[float, str, str | None]] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float, *args, **kwargs) -> None:
        waits.append((seconds, consumer.state, consumer.last_error))
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    with caplog.at_level(logging.WARNING, "omnihub.commands"), pytest.raises(Stop):
        await consumer._run()
    monkeypatch.undo()
    assert script == []
    assert waits == [
        (0.1, "down", "connection refused"),
        (0.2, "down", "connection refused"),
        (0.1, "down", "connection lost"),  # it had consumed: the backoff starts over
        (0.2, "down", "connection refused"),
        (0.3, "down", "RuntimeError('PRECONDITION_FAILED')"),  # 0.4, capped
        (0.1, "down", "connection lost"),
    ]
    assert closed == ["session", "dead"] * 7  # every session closed before the wait (and at the stop)
    messages = [(r.getMessage(), r.exc_info is not None) for r in caplog.records]
    lost = ("command consumer lost the broker; reconnecting", False)
    assert messages == [lost, lost, lost, lost, ("command consumer failed; reconnecting", True), lost]
