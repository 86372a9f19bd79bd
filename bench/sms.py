"""SMS webhook throughput: Twilio-shaped, signed form POSTs to `/channels/sms_twilio/inbound`
through the X-Twilio-Signature check (twilio's RequestValidator) and a durable ingest, against a bare
aiohttp handler that parses the same form, measured in the same run.

    python bench/sms.py [--seconds 10] [--connections 64] [--rounds 3] [--no-pin]

Requests are signed in advance with twilio's RequestValidator (wrk's Lua has no HMAC) and replayed
in order; each is a new message from a new customer number, so each 200 is a new profile, a new
interaction and its events, committed (SQLite WAL, synchronous=FULL) before the answer.
Target (issue 4): a figure, with its ratio to the floor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

if __package__ in (None, ""):  # `python bench/x.py`: the project root, not bench/, heads sys.path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from bench import ingest as common  # noqa: E402

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TOKEN = "bench-token"
PUBLIC = "https://hub.example.com"
PATH = "/channels/sms_twilio/inbound"


def requests_lua(count: int, data_file: Path) -> str:
    """A wrk script replaying `count` signed requests. The requests live in a data file read at
    start: LuaJIT (wrk's Lua) allows at most 65,536 constants in one chunk."""
    validator = RequestValidator(TOKEN)
    with open(data_file, "w") as out:
        for i in range(count):
            params = {"MessageSid": f"SM{i:032x}", "SmsSid": f"SM{i:032x}", "AccountSid": ACCOUNT_SID,
                      "From": f"+8210{20000000 + i:08d}", "To": "+15005550006", "Body": "배송지 변경 부탁드립니다",
                      "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received", "ApiVersion": "2010-04-01"}
            out.write(f"{validator.compute_signature(PUBLIC + PATH, params)}\t{urlencode(params)}\n")
    return f"""
local reqs = {{}}
for line in io.lines("{data_file}") do
  local signature, body = line:match("^([^\t]*)\t(.*)$")
  reqs[#reqs + 1] = {{body, signature}}
end
local n = 0
request = function()
  n = n % #reqs + 1
  local r = reqs[n]
  return wrk.format("POST", "{PATH}", {{["Content-Type"] = "application/x-www-form-urlencoded",
                                        ["X-Twilio-Signature"] = r[2]}}, r[1])
end"""


def main() -> None:
    parser = argparse.ArgumentParser(description="omnihub SMS webhook throughput against a bare aiohttp floor")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=120_000, help="distinct signed messages")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args()
    common.PIN = not args.no_pin
    if not shutil.which("wrk"):
        sys.exit("bench/sms.py needs wrk: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "sms.lua"
        script.write_text(requests_lua(args.requests, Path(tmp) / "sms-requests.txt"))
        floors, hubs = common.alternate_rounds(args, script, lambda n: {
            "OMNIHUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/sms{n}.db", "OMNIHUB_PUBLIC_BASE_URL": PUBLIC,
            "OMNIHUB_BLOB_DIR": f"{tmp}/blobs",
            "OMNIHUB_ADAPTERS__SMS_TWILIO__ACCOUNT_SID": ACCOUNT_SID,
            "OMNIHUB_ADAPTERS__SMS_TWILIO__AUTH_TOKEN": TOKEN,
            "OMNIHUB_ADAPTERS__SMS_TWILIO__FROM_NUMBER": "+15005550006"})
    common.report("sms", args, "floor  bare aiohttp form handler", "omnihub signed Twilio SMS webhook",
                  "signature check + durable ingest (SQLite)", floors, hubs)


if __name__ == "__main__":
    main()
