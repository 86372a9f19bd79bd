"""A local stand-in for Twilio's Messages API, so the demo's replies leave the hub through the real
`twilio` client and the real adapter, and never the machine.

The demo's account is fictional: pointed at api.twilio.com, every reply an agent typed in the
console was refused (401) and retried for minutes. This answers the one call the SMS adapter makes
(create a message, https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource)
as Twilio would, and lists what it took (the same resource's list call), which the demo's summary
and a curious user can read. The demo serves it on 127.0.0.1, in its own process beside the hub.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

import aiohttp
from aiohttp import web

_MESSAGES = "/2010-04-01/Accounts/{account}/Messages.json"


@dataclass
class TwilioStandIn:
    account_sid: str
    auth_token: str
    sent: list[dict[str, str]] = field(default_factory=list)  # each message taken, as Twilio records it

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(_MESSAGES, self._create)
        app.router.add_get(_MESSAGES, self._list)
        return app

    def _refusal(self, request: web.Request) -> web.Response | None:
        """Twilio's answer to a wrong account or credentials (HTTP basic auth), None to the right ones."""
        expected = aiohttp.encode_basic_auth(self.account_sid, self.auth_token)
        if not hmac.compare_digest(request.headers.get("Authorization", ""), expected) \
                or request.match_info["account"] != self.account_sid:
            return _error(401, 20003, "Authenticate")
        return None

    async def _create(self, request: web.Request) -> web.Response:
        if refused := self._refusal(request):
            return refused
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not form.get("To"):
            return _error(400, 21604, "A 'To' phone number is required.")
        if not (form.get("Body") or form.get("MediaUrl")):
            return _error(400, 21602, "Message body is required.")
        message = self._resource("SM" + secrets.token_hex(16), form)
        self.sent.append(message)
        return web.json_response(message, status=201)

    async def _list(self, request: web.Request) -> web.Response:
        if refused := self._refusal(request):
            return refused
        return web.json_response({"messages": self.sent[::-1], "page": 0, "page_size": 50})

    def _resource(self, sid: str, form: dict[str, str]) -> dict[str, str]:
        now = format_datetime(datetime.now(UTC), usegmt=True)
        return {
            "sid": sid, "account_sid": self.account_sid, "api_version": "2010-04-01",
            "to": form["To"], "from": form.get("From"), "body": form.get("Body", ""),
            "messaging_service_sid": form.get("MessagingServiceSid"), "status": "queued",
            "direction": "outbound-api", "num_media": "0", "num_segments": "1",
            "date_created": now, "date_updated": now, "date_sent": None, "price": None, "price_unit": "USD",
            "error_code": None, "error_message": None, "subresource_uris": {},
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(status=status, data={
        "code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status})
