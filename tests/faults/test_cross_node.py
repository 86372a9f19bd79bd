"""Several hubs on one PostgreSQL database, no sticky sessions: what one hub has for a websocket
another holds crosses over (hub.channels.peers). A chat visitor on hub A gets the reply an agent
sends through hub B on the socket it already has; an agent whose console is on the hub that is not
routing gets the offers the routing hub decides, and accepts through it.

Speed is not asserted (CI shares two cores); the latencies are printed (`-s`) for the report.
Delivery is asserted on the socket that was open before: the chat widget's fallback (a reply
held until its next hello) never runs here, so only the peers' crossing can make these pass.
"""

from __future__ import annotations

import json
import statistics
import time

import aiohttp

from tests.faults.nodes_support import (
    ORIGIN,
    AgentConsole,
    hub_config,
    leader_among,
    post_json,
    start_hubs,
)
from tests.hub.payloads import sms

DEADLINE_S = 30.0  # generous: a delivery that takes longer is a lost one
ROUNDS = 5


async def _frame(ws: aiohttp.ClientWebSocketResponse, timeout: float = DEADLINE_S) -> dict:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, f"the visitor's socket closed: {msg}"
    return json.loads(msg.data)


async def test_a_reply_sent_through_hub_b_reaches_the_visitor_connected_to_hub_a(hub_processes, fresh_pg_url, tmp_path):
    config = hub_config(hub_processes, tmp_path, fresh_pg_url)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        hub_a, hub_b = await start_hubs(hub_processes, config, 2, http)
        ws = await http.ws_connect(f"{hub_a.base}/v1/chat/ws", headers={"Origin": ORIGIN})
        await ws.send_json({"type": "hello", "name": "Visitor"})
        assert (await _frame(ws))["type"] == "welcome"
        await ws.send_json({"type": "message", "id": "m1", "text": "where is my order?"})
        ack = await _frame(ws)
        assert ack["type"] == "ack", ack

        latencies = []
        # The last reply is over NOTIFY's 8000 bytes (3,000 Hangul syllables are 9,000 bytes): it
        # crosses in parts.
        texts = [f"reply {n} from hub B" for n in range(ROUNDS)] + ["가" * 3000]
        for text in texts:
            started = time.monotonic()
            sent = await post_json(http, f"{hub_b.base}/v1/messages",
                                   {"in_reply_to": ack["interaction_id"], "text": text})
            frame = await _frame(ws)
            latencies.append(time.monotonic() - started)
            assert frame["type"] == "message" and frame["text"] == text, frame
            assert frame["id"] == sent["id"]
            await ws.send_json({"type": "delivered", "id": frame["id"]})
        assert not ws.closed  # one socket throughout: no reconnect, no hello replaying held replies
        await ws.close()
    print(f"\nchat reply via hub B -> visitor on hub A, POST to frame (s): "
          f"{', '.join(f'{x:.3f}' for x in latencies)}; median {statistics.median(latencies):.3f}, "
          f"max {max(latencies):.3f} (last one: {len(texts[-1].encode())} bytes, in parts)")


async def test_an_agent_on_the_hub_that_is_not_routing_gets_offers_and_accepts_them(hub_processes, fresh_pg_url,
                                                                                     tmp_path):
    config = hub_config(hub_processes, tmp_path, fresh_pg_url)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        hubs = await start_hubs(hub_processes, config, 2, http)
        leader = await leader_among(http, hubs)
        standby = next(h for h in hubs if h is not leader)

        console = await AgentConsole.connect(http, standby, "alice")
        assert console.hello["agent"]["id"] == "alice"
        # Asked of the hub that does not route: run by the one that does.
        presence = await post_json(http, f"{standby.base}/v1/agents/alice/presence", {"presence": "available"})
        assert presence["presence"] == "available"

        latencies = []
        for n in range(ROUNDS):
            started = time.monotonic()
            created = await post_json(http, f"{standby.base}/v1/interactions", sms(f"010-5555-{n:04d}"))
            offer = await console.next_of("offer", DEADLINE_S)
            latencies.append(time.monotonic() - started)
            assert offer["interaction"]["id"] == created["id"], offer
            await console.ws.send_json({"op": "accept", "task_id": offer["task_id"]})
            ack = await console.next_of("ack", DEADLINE_S)
            assert ack["task"]["state"] == "assigned" and ack["task"]["agent_id"] == "alice", ack
            done = await post_json(http, f"{standby.base}/v1/tasks/{offer['task_id']}/complete", {"disposition": "ok"})
            assert done["state"] == "completed"
        # The routing hub holds what the agent did on the other one.
        async with http.get(f"{leader.base}/v1/agents") as resp:
            alice = next(a for a in (await resp.json())["items"] if a["id"] == "alice")
        assert alice["presence"] == "available" and alice["tasks"] == {}
        await console.ws.close()
    print(f"\noffer decided on the routing hub -> console on the other hub, POST to frame (s): "
          f"{', '.join(f'{x:.3f}' for x in latencies)}; median {statistics.median(latencies):.3f}, "
          f"max {max(latencies):.3f}")
