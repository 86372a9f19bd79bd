"""A real `omnihub serve` at DEBUG with the access log on, sent traffic that carries customers'
numbers and addresses in every place they turn up (URL-encoded query strings and paths, Referer,
User-Agent, a non-ASCII address typed as a username, interaction bodies): its whole log, every level,
holds none of them in any encoding, and its access records keep status codes and sizes as numbers.

The scan looks for the test's own values in each encoding, independently of the masker's patterns."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import aiohttp

from tests.faults.harness import HubProcesses
from tests.hub.payloads import with_identifiers

PHONES = ["+821077770123", "+821077770124", "+821077770125"]
EMAILS = ["zqxmember7@example.com", "민지테스트@예시.kr"]


def _forbidden() -> list[str]:
    """What would give a number or an address away, in the forms a log might hold it."""
    out = []
    for phone in PHONES:
        core = phone[3:-2]  # the national number without its last two digits: "107777012"
        out += [core, "0" + core, quote(phone, safe="")]
    for email in EMAILS:
        local, domain = email.split("@")
        out += [local[1:], quote(local[1:], safe=""), quote(email, safe=""),
                json.dumps(local[1:]).strip('"')]  # \\u-escaped, should the log ever be ASCII-escaped
    return out


async def test_the_whole_log_at_debug_holds_no_number_or_address(tmp_path):
    hubs = HubProcesses(tmp_path)
    config = hubs.config({"database_url": f"sqlite+aiosqlite:///{tmp_path}/hub.db", "log_level": "DEBUG",
                          "access_log": True})
    hub = hubs.start(config)
    try:
        async with aiohttp.ClientSession() as http:
            await hub.wait_healthy(http)
            body = with_identifiers(("phone", PHONES[0]), ("email", EMAILS[0]))
            async with http.post(f"{hub.base}/v1/interactions", json=body) as resp:
                assert resp.status == 201, await resp.text()
            for username in EMAILS:  # a user who types an address as the username: "login refused"
                async with http.post(f"{hub.base}/v1/auth/login",
                                     json={"username": username, "password": "not the password"}) as resp:
                    assert resp.status == 401
            headers = {"Referer": f"https://crm.example/search?q={quote(EMAILS[0], safe='')}",
                       "User-Agent": f"crm-sync/2.1 (contact {EMAILS[1]}; {PHONES[1]})"}
            async with http.get(f"{hub.base}/v1/profiles", headers=headers,
                                params={"identifier": f"phone:{PHONES[1]}"}) as resp:
                assert resp.status == 404
            async with http.get(f"{hub.base}/v1/profiles/{quote(PHONES[2], safe='')}") as resp:
                assert resp.status in (404, 422)
            async with http.get(f"{hub.base}/v1/profiles?identifier=email%3A{quote(EMAILS[1])}") as resp:
                assert resp.status == 404
    finally:
        hub.kill()
    log = hub.log_text()
    leaks = [f for f in _forbidden() if f in log]
    assert not leaks, f"{len(leaks)} leaks in {hub.log_path}: {leaks}"
    access = [json.loads(line) for line in log.splitlines()
              if line.startswith("{") and json.loads(line).get("logger") == "aiohttp.access"]
    statuses = {record["status"] for record in access}
    assert {201, 401, 404} <= statuses, statuses
    assert all(isinstance(r["size"], int) and isinstance(r["status"], int) for r in access)
    assert any("identifier=phone:***24" in r["path"] for r in access)  # masked, still readable
    assert not re.search(r'"status": "\*\*\*', log)
