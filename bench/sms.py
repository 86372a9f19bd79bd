"""SMS webhook throughput: Twilio-shaped, signed form POSTs to `/channels/sms_twilio/inbound`
through the X-Twilio-Signature check (twilio's RequestValidator) and a durable ingest, against a bare
aiohttp handler that parses the same form, measured in the same run.

    python bench/sms.py [--seconds 10] [--connections 64] [--rounds 3] [--no-pin] [--postgres]

Requests are signed in advance with twilio's RequestValidator (wrk's Lua has no HMAC) and each is
sent once; each is a new message from a new customer number, so each 200 is a new profile, a new
interaction and its events, committed (SQLite WAL, synchronous=FULL) before the answer. Each hub
run starts on an empty database; --postgres as in bench/ingest.py.
Target (issue 4): a figure, with its ratio to the floor.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

if __package__ in (None, ""):  # `python bench/x.py`: the project root, not bench/, heads sys.path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from bench import _hubs as common  # noqa: E402
from bench import ingest  # noqa: E402

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TOKEN = "bench-token"
PUBLIC = "https://hub.example.com"
PATH = "/channels/sms_twilio/inbound"


def requests_lua(count: int, data_file: Path) -> str:
    """A wrk script sending `count` signed requests, each once (numbered as bench/_hubs.py says; past
    `count` it wraps, and the repeats show in the figures). The requests live in a data file read
    at start: LuaJIT (wrk's Lua) allows at most 65,536 constants in one chunk."""
    validator = RequestValidator(TOKEN)
    with open(data_file, "w") as out:
        for i in range(count):
            params = {"MessageSid": f"SM{i:032x}", "SmsSid": f"SM{i:032x}", "AccountSid": ACCOUNT_SID,
                      "From": f"+8210{20000000 + i:08d}", "To": "+15005550006", "Body": "배송지 변경 부탁드립니다",
                      "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received", "ApiVersion": "2010-04-01"}
            out.write(f"{validator.compute_signature(PUBLIC + PATH, params)}\t{urlencode(params)}\n")
    return common.NUMBERING_LUA + f"""
local reqs = {{}}
for line in io.lines("{data_file}") do
  local signature, body = line:match("^([^\t]*)\t(.*)$")
  reqs[#reqs + 1] = {{body, signature}}
end
request = function()
  local r = reqs[number() % #reqs + 1]
  return wrk.format("POST", "{PATH}", {{["Content-Type"] = "application/x-www-form-urlencoded",
                                        ["X-Twilio-Signature"] = r[2]}}, r[1])
end"""


def main() -> None:
    args = ingest.parse_args("omnihub SMS webhook throughput against a bare aiohttp floor", extra=lambda parser:
                             parser.add_argument("--requests", type=int,
                                                 help="distinct signed messages (120,000; 400,000 with --postgres)"))
    common.need_wrk("bench/sms.py")
    args.requests = args.requests or (400_000 if args.postgres else 120_000)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "sms.lua"
        script.write_text(requests_lua(args.requests, Path(tmp) / "sms-requests.txt"))
        env = {"OMNIHUB_PUBLIC_BASE_URL": PUBLIC, "OMNIHUB_BLOB_DIR": f"{tmp}/blobs",
               "OMNIHUB_ADAPTERS__SMS_TWILIO__ACCOUNT_SID": ACCOUNT_SID,
               "OMNIHUB_ADAPTERS__SMS_TWILIO__AUTH_TOKEN": TOKEN,
               "OMNIHUB_ADAPTERS__SMS_TWILIO__FROM_NUMBER": "+15005550006"}
        if args.postgres:
            ingest.run_postgres_mode("sms", args, script, PATH, env, Path(tmp))
            return
        floors, hubs = ingest.run_rounds(args, script, PATH, env, Path(tmp))
    ingest.report("sms", args, "floor  bare aiohttp form handler", "omnihub signed Twilio SMS webhook",
                  "signature check + durable ingest (SQLite)", floors, hubs)


if __name__ == "__main__":
    main()
