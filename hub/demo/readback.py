"""What the hub made of the demo's story, read back from its own HTTP API (never from the story's
own variables: the summary shows what the hub stored, not what the demo meant to send)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from hub.demo.story import CUSTOMER_PHONE

# Tasks are routed by the router after the commit, a few milliseconds later; past this, the
# summary shows them as they are (e.g. still waiting) rather than hold the demo up.
_ROUTING_WAIT_S = 5.0
_QUIET_S = 0.3  # longer than the router's poll (0.25 s), which ends with a flush


@dataclass(frozen=True)
class Readback:
    profile: dict[str, Any]
    timeline: list[dict[str, Any]]
    tasks: list[dict[str, Any]]  # the live tasks of the timeline's interactions
    outbox: dict[str, Any]
    ready: dict[str, Any]


async def read_back(http: aiohttp.ClientSession, base_url: str) -> Readback:
    profile = await _get(http, base_url, f"/v1/profiles?identifier={quote('phone:' + CUSTOMER_PHONE)}")
    timeline = await _all(http, base_url, f"/v1/profiles/{profile['id']}/timeline")
    tasks = await _routed(http, base_url, {item["id"] for item in timeline})
    outbox = await _quiet_outbox(http, base_url)
    ready = await _get(http, base_url, "/readyz")
    return Readback(profile, timeline, tasks, outbox, ready)


async def _routed(http: aiohttp.ClientSession, base_url: str, interaction_ids: set[str]) -> list[dict[str, Any]]:
    """The tasks of these interactions once each has one and none waits for an offer (or the wait ends)."""
    deadline = time.monotonic() + _ROUTING_WAIT_S
    while True:
        live = await _all(http, base_url, "/v1/tasks")
        ours = [task for task in live if task["interaction_id"] in interaction_ids]
        settled = {t["interaction_id"] for t in ours} == interaction_ids and all(
            t["state"] != "waiting" for t in ours)
        if settled or time.monotonic() > deadline:
            return ours
        await asyncio.sleep(0.05)


async def _quiet_outbox(http: aiohttp.ClientSession, base_url: str) -> dict[str, Any]:
    """The outbox once two reads a router poll apart agree. /v1/tasks shows the router's memory,
    which runs a flush ahead of the database: an offer it shows may not have its task.offered
    event committed yet."""
    deadline = time.monotonic() + _ROUTING_WAIT_S
    before = await _get(http, base_url, "/v1/outbox")
    while True:
        await asyncio.sleep(_QUIET_S)
        after = await _get(http, base_url, "/v1/outbox")
        if after["routing_keys"] == before["routing_keys"] or time.monotonic() > deadline:
            return after
        before = after


async def _all(http: aiohttp.ClientSession, base_url: str, path: str) -> list[dict[str, Any]]:
    """Every item of a list the hub pages (`{"items": [...], "next": cursor}`), following `next`."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await _get(http, base_url, f"{path}?limit=200" + (f"&cursor={quote(cursor)}" if cursor else ""))
        items.extend(page["items"])
        cursor = page["next"]
        if cursor is None:
            return items


async def _get(http: aiohttp.ClientSession, base_url: str, path: str) -> dict[str, Any]:
    async with http.get(base_url + path) as resp:
        resp.raise_for_status()
        return await resp.json()
