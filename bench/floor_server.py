"""The ingest floor: a bare aiohttp JSON handler doing the least an ingest endpoint can do."""

from __future__ import annotations

import argparse
import json
import uuid

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    return web.json_response({"id": str(uuid.uuid4()), "channel": body.get("channel")}, status=201)


async def handle_form(request: web.Request) -> web.Response:
    # The SMS floor: what a bare webhook does with Twilio's form POST, and an empty TwiML answer.
    form = await request.post()
    return web.Response(text=f"<Response/><!-- {form.get('MessageSid')} -->", content_type="application/xml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    port = parser.parse_args().port
    app = web.Application()
    app.router.add_post("/v1/interactions", handle)
    app.router.add_post("/channels/sms_twilio/inbound", handle_form)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
