"""SIGKILL a real `omnihub serve` with waiting and assigned tasks; the next process routes on as if
nothing happened (issue 6 acceptance: "kill the hub ..., start it, the state is the same").

No graceful shutdown runs on SIGKILL: what the second process sees is only what the first made
durable. Every answer of the routing API comes after its transaction committed, so the state read
over HTTP before the kill is the state the database holds. SQLite file database, routing config
in a YAML --config file; the same test against PostgreSQL is test_routing_restart (in-process).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.hub.payloads import sms

OMNIHUB = Path(sys.executable).with_name("omnihub")
START_TIMEOUT_S = 30.0

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and a console script")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    """One `omnihub serve` process on a free port."""

    def __init__(self, config: Path, log: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
        self._log = log.open("ab")
        self.proc = subprocess.Popen([str(OMNIHUB), "serve", "--config", str(config), "--port", str(self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env)

    async def ready(self, http: aiohttp.ClientSession) -> None:
        """Until the router is active (it has rebuilt from the database), bounded."""
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        while asyncio.get_running_loop().time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"omnihub exited with {self.proc.returncode}")
            try:
                async with http.get(f"{self.base}/v1/queues") as resp:
                    if resp.status == 200 and (await resp.json())["active"]:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError("omnihub did not become ready in time")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def hubs(tmp_path):
    started: list[Hub] = []
    config = tmp_path / "omnihub.yaml"
    config.write_text(yaml.safe_dump({
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/omnihub.db",
        "relay_poll_interval_s": 0.2,
        "routing": {
            "queues": [{"name": "support", "sla_s": 30}],
            # One SMS at a time for alice: her capacity after the restart shows in what she is offered.
            "agents": [{"id": "alice", "capacity": {"max_per_channel": {"sms": 1}}}, {"id": "bob"}],
            "default_queue": "support",  # no rules here: every inbound interaction is routed
            "poll_interval_s": 0.05,
        },
    }))

    def start() -> Hub:
        hub = Hub(config, tmp_path / "omnihub.log")
        started.append(hub)
        return hub

    yield start
    for hub in started:
        hub.kill()


async def _json(http: aiohttp.ClientSession, method: str, url: str, **kw) -> dict:
    async with http.request(method, url, **kw) as resp:
        assert resp.status in (200, 201), f"{method} {url}: {resp.status} {await resp.text()}"
        return await resp.json()


async def _eventually(probe, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def _state(http: aiohttp.ClientSession, hub: Hub) -> dict:
    """What the supervisor API shows: the live tasks in line order, alice, the queue's counts."""
    tasks = (await _json(http, "GET", f"{hub.base}/v1/tasks"))["items"]
    agents = {a["id"]: a for a in (await _json(http, "GET", f"{hub.base}/v1/agents"))["items"]}
    queue = (await _json(http, "GET", f"{hub.base}/v1/queues"))["items"][0]["stats"]
    return {
        "tasks": [(t["id"], t["state"], t["agent_id"], t["priority"], t["enqueued_at"]) for t in tasks],
        "alice": {k: agents["alice"][k] for k in ("presence", "used", "tasks")},
        "bob": agents["bob"]["presence"],
        "queue": {k: queue[k] for k in ("waiting", "offered", "answered")},
    }


async def test_sigkill_with_waiting_and_assigned_tasks_then_restart_keeps_the_state(hubs):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        first = hubs()
        await first.ready(http)
        for phone, priority in (("010-7000-0001", 0), ("010-7000-0002", 0), ("010-7000-0003", 5),
                                ("010-7000-0004", 1)):
            await _json(http, "POST", f"{first.base}/v1/interactions", json=sms(phone, priority=priority))

        async def all_waiting():
            tasks = (await _json(http, "GET", f"{first.base}/v1/tasks?state=waiting"))["items"]
            return tasks if len(tasks) == 4 else None

        waiting = await _eventually(all_waiting)
        # Priority first, then time waited.
        assert [t["priority"] for t in waiting] == [5, 1, 0, 0]
        line = [t["id"] for t in waiting]
        urgent = line[0]
        await _json(http, "POST", f"{first.base}/v1/agents/alice/presence", json={"presence": "available"})
        offered = (await _json(http, "GET", f"{first.base}/v1/tasks?state=offered"))["items"]
        assert [(t["id"], t["agent_id"]) for t in offered] == [(urgent, "alice")]
        accepted = await _json(http, "POST", f"{first.base}/v1/tasks/{urgent}/accept", json={"agent_id": "alice"})
        assert accepted["state"] == "assigned"

        before = await _state(http, first)
        assert before["tasks"][0][:3] == (urgent, "assigned", "alice")
        assert [t[1] for t in before["tasks"][1:]] == ["waiting"] * 3
        assert before["alice"] == {"presence": "available", "used": 20, "tasks": {urgent: "assigned"}}
        assert before["queue"] == {"waiting": 3, "offered": 0, "answered": 1}

        first.kill()
        assert first.proc.returncode == -signal.SIGKILL

        second = hubs()
        await second.ready(http)
        after = await _state(http, second)
        # Same tasks, same order, same enqueue times; alice still holds the call's slot, so with
        # one SMS at a time she is offered nothing; the answer counted before the kill is still counted.
        assert after == before

        # And it routes on: completing frees alice, who takes the next in line (priority 1).
        done = await _json(http, "POST", f"{second.base}/v1/tasks/{urgent}/complete", json={"disposition": "ok"})
        assert done["state"] == "completed"

        async def next_offered():
            tasks = (await _json(http, "GET", f"{second.base}/v1/tasks?state=offered"))["items"]
            return tasks or None

        offered = await _eventually(next_offered)
        assert [(t["id"], t["agent_id"]) for t in offered] == [(line[1], "alice")]
