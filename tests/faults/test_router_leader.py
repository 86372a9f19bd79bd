"""The routing hub SIGKILLed, five times over: another hub takes the router (the PostgreSQL advisory
lock its dead session held is released with it), rebuilds from the tables, and the next task is
offered to the agent whose console is on a surviving hub. Never two routers at once: throughout,
the lock's holders in pg_locks and every hub's /readyz are sampled.

The failover times (kill to offer on the console) are printed (`-s`), not asserted against a
figure: CI shares two cores. The design's figure is 5 s; `_LOCK_RETRY_S` (2 s) bounds the wait
for the lock, the rest is the new router's rebuild.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from typing import Self

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

from hub.settings import RoutingSettings
from tests.faults.nodes_support import (
    AgentConsole,
    hub_config,
    leader_among,
    post_json,
    routing_state,
    start_hubs,
)
from tests.hub.payloads import sms

TRIALS = 5
DEADLINE_S = 60.0


class LeaderWatch:
    """Samples, until stopped, how many sessions hold the router lock and how many hubs say they route."""

    def __init__(self, database_url: str, http: aiohttp.ClientSession, hubs: list) -> None:
        url = make_url(database_url)
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._database = url.database
        self._http, self._hubs = http, hubs
        self.most_holders = self.most_active = 0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._conn = await asyncpg.connect(self._dsn)
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._conn.close()

    async def _watch(self) -> None:
        key = RoutingSettings().lock_key
        while True:
            holders = await self._conn.fetchval(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = $1 "
                "AND l.classid = $2 AND l.objid = $3", self._database, key >> 32, key & 0xFFFFFFFF)
            live = [h for h in self._hubs if h.alive()]
            states = await asyncio.gather(*(routing_state(self._http, h) for h in live))
            self.most_holders = max(self.most_holders, holders)
            self.most_active = max(self.most_active, sum(s == "active" for s in states))
            self.samples += 1
            await asyncio.sleep(0.05)


async def test_the_routing_hub_killed_five_times_the_next_task_is_offered_and_never_two_route(
        hub_processes, fresh_pg_url, tmp_path):
    config = hub_config(hub_processes, tmp_path, fresh_pg_url)
    failovers: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        hubs = await start_hubs(hub_processes, config, 3, http)
        async with LeaderWatch(fresh_pg_url, http, hubs) as watch:
            leader = await leader_among(http, hubs)
            await post_json(http, f"{leader.base}/v1/agents/alice/presence", {"presence": "available"})
            console = None
            for trial in range(TRIALS):
                live = [h for h in hubs if h.alive()]
                await asyncio.gather(*(h.wait_healthy(http) for h in live))
                leader = await leader_among(http, live)
                survivor = next(h for h in live if h is not leader)
                if console is None or console.hub is leader:
                    if console is not None:
                        await console.ws.close()
                    console = await AgentConsole.connect(http, survivor, "alice")

                killed_at = time.monotonic()
                leader.kill()
                created = await post_json(http, f"{console.hub.base}/v1/interactions", sms(f"010-6000-{trial:04d}"))
                offer = await console.next_of("offer", DEADLINE_S)
                failovers.append(time.monotonic() - killed_at)
                assert offer["interaction"]["id"] == created["id"], offer

                # The agent works it through the hub it is connected to, whichever routes now.
                await console.ws.send_json({"op": "accept", "task_id": offer["task_id"]})
                ack = await console.next_of("ack", DEADLINE_S)
                assert ack["task"]["state"] == "assigned", ack
                await post_json(http, f"{console.hub.base}/v1/tasks/{offer['task_id']}/complete", {})
                if trial < TRIALS - 1:
                    # A replacement, so two hubs are up at the next kill; it starts during that trial's set-up.
                    hubs.append(hub_processes.start(config))
            await console.ws.close()
        assert watch.samples > 0
        assert watch.most_holders <= 1, f"{watch.most_holders} sessions held the router lock at once"
        assert watch.most_active <= 1, f"{watch.most_active} hubs said they were routing at once"
    print(f"\nrouter failover, SIGKILL to the next task's offer (s): {', '.join(f'{x:.2f}' for x in failovers)}; "
          f"median {statistics.median(failovers):.2f}, max {max(failovers):.2f}; "
          f"{watch.samples} samples, at most {watch.most_holders} lock holder(s), {watch.most_active} active hub(s)")
