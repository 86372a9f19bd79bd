"""`omnihub demo` sends through a local stand-in for Twilio: a reply typed in the console (a POST
/v1/messages answering the customer's SMS) goes out through the real adapter and twilio client to the
stand-in the summary names, is sent at the first try, and the log holds no twilio request dumps."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import aiohttp

from tests.hub.conftest import eventually

CUSTOMER_PHONE_E164 = "+821055550100"
START_TIMEOUT_S = 120.0  # generous: the demo migrates a fresh database on a shared 2-core machine


def _lines_until(proc: subprocess.Popen, marker: str) -> list[str]:
    """stdout's lines up to the one holding `marker`, or fail when the demo exits or takes too long."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    while True:
        line = lines.get(timeout=START_TIMEOUT_S)
        assert line is not None, f"the demo exited with {proc.wait()}: {''.join(seen)}"
        seen.append(line)
        if marker in line:
            return seen


async def test_a_console_reply_goes_to_the_local_stand_in_and_nowhere_else(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("omnihub")), "demo", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        shown = "".join(await asyncio.to_thread(_lines_until, proc, "what Twilio's stand-in took"))
        base = re.search(r"the hub is running at (http://\S+)", shown).group(1)
        stand_in = re.search(r"^\s+Twilio\s+\(sms_twilio\) -> (http://127\.0\.0\.1:\d+)$", shown, re.M).group(1)
        assert "nothing leaves this machine" in shown
        listing = re.search(r"curl -s -u (\S+):(\S+) (http://\S+Messages\.json)", shown)
        auth = {"Authorization": aiohttp.encode_basic_auth(listing.group(1), listing.group(2))}
        async with aiohttp.ClientSession() as http:
            profile = await (await http.get(f"{base}/v1/profiles?identifier={quote('phone:' + CUSTOMER_PHONE_E164)}")).json()
            timeline = (await (await http.get(f"{base}/v1/profiles/{profile['id']}/timeline")).json())["items"]
            sms = next(item for item in timeline if item["channel"] == "sms")
            resp = await http.post(f"{base}/v1/messages", json={
                "in_reply_to": sms["id"], "channel": "sms", "text": "환불 처리되었습니다 (refunded)",
                "purpose": "transactional", "idempotency_key": "demo-reply-1"})
            assert resp.status in (200, 202), await resp.text()
            message_id = (await resp.json())["id"]

            async def sent():
                found = await (await http.get(f"{base}/v1/messages/{message_id}")).json()
                return found if found["state"] in ("sent", "failed") else None

            message = await eventually(sent, timeout=60)
            assert message["state"] == "sent" and message["attempts"] == 1, message
            took = (await (await http.get(listing.group(3), headers=auth)).json())["messages"]
        assert listing.group(3).startswith(stand_in)
        (reply,) = [m for m in took if m["body"] == "환불 처리되었습니다 (refunded)"]
        assert reply["to"] == CUSTOMER_PHONE_E164 and reply["sid"] == message["provider_ref"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0, err
    entries = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert not [e for e in entries if e["logger"].startswith("twilio")]  # no request dumps
    assert "api.twilio.com" not in err and "BEGIN Twilio API Request" not in err
