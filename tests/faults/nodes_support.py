"""Shared by the several-hubs fault tests: one config for N hubs on one PostgreSQL database, which
hub routes (its /readyz), and an agent's console websocket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.faults.harness import HubProcess, HubProcesses

ORIGIN = "https://shop.example.com"
CHAT_SECRET = "fault-chat-secret-0123456789"


def hub_config(processes: HubProcesses, tmp_path: Path, database_url: str, **extra: Any) -> Path:
    settings: dict[str, Any] = {
        "database_url": database_url,
        "blob_dir": str(tmp_path / "blobs"),
        "relay_poll_interval_s": 0.2,
        "backoffice": {"commands_enabled": False},
        "adapters": {"chat": {"secret": CHAT_SECRET, "allowed_origins": [ORIGIN], "hello_timeout_s": 10}},
        "routing": {
            "queues": [{"name": "support", "sla_s": 30}],
            # Room for every task a test makes: offers must not wait for capacity.
            "agents": [{"id": "alice", "capacity": {"max_per_channel": {"sms": 50, "chat": 50}}}],
            "default_queue": "support",  # no rules: every inbound interaction is routed
            "poll_interval_s": 0.05,
        },
        **extra,
    }
    return processes.config(settings)


async def start_hubs(processes: HubProcesses, config: Path, count: int, http: aiohttp.ClientSession) -> list[HubProcess]:
    hubs = [processes.start(config) for _ in range(count)]
    await asyncio.gather(*(h.wait_healthy(http) for h in hubs))
    return hubs


async def routing_state(http: aiohttp.ClientSession, hub: HubProcess) -> str | None:
    try:
        async with http.get(f"{hub.base}/readyz") as resp:
            return (await resp.json())["routing"]["state"]
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
        return None


async def leader_among(http: aiohttp.ClientSession, hubs: list[HubProcess], timeout: float = 60.0) -> HubProcess:
    """The one hub whose router is active; fails if two ever say so."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        states = await asyncio.gather(*(routing_state(http, h) for h in hubs))
        active = [h for h, s in zip(hubs, states, strict=True) if s == "active"]
        assert len(active) <= 1, f"two routing hubs at once: {states}"
        if active:
            return active[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no hub became the router in {timeout}s")


async def post_json(http: aiohttp.ClientSession, url: str, body: dict[str, Any], ok: tuple[int, ...] = (200, 201, 202)) -> dict:
    async with http.post(url, json=body) as resp:
        text = await resp.text()
        assert resp.status in ok, f"POST {url}: {resp.status} {text}"
        return json.loads(text)


class AgentConsole:
    """An agent's console websocket on one hub."""

    def __init__(self, hub: HubProcess, ws: aiohttp.ClientWebSocketResponse, hello: dict[str, Any]) -> None:
        self.hub, self.ws, self.hello = hub, ws, hello

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, hub: HubProcess, agent_id: str) -> AgentConsole:
        ws = await http.ws_connect(f"{hub.base}/v1/agents/ws?agent_id={agent_id}")
        hello = await cls._next(ws, 30)
        assert hello["type"] == "hello", hello
        return cls(hub, ws, hello)

    @staticmethod
    async def _next(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> dict[str, Any]:
        msg = await ws.receive(timeout=timeout)
        assert msg.type is aiohttp.WSMsgType.TEXT, f"the console socket closed: {msg}"
        return json.loads(msg.data)

    async def next_of(self, kind: str, timeout: float = 30.0, **match: Any) -> dict[str, Any]:
        """The next frame of `type` kind (and the given fields), skipping others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no {kind} frame {match} in {timeout}s")
            frame = await self._next(self.ws, left)
            if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame
