"""A local aiohttp server that plays Twilio's REST API, so the real `twilio` client is tested
unchanged, and that calls the hub back the way Twilio does (form POSTs signed with twilio's own
RequestValidator).

Only the network edge is fake: what the client sends, and what Twilio would answer, follow
https://www.twilio.com/docs/messaging/api/message-resource.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
OUR_NUMBER = "+15005550006"  # Twilio's magic "valid" test sender


def sid(prefix: str = "SM") -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class FakeTwilio:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    sent: list[dict[str, str]] = field(default_factory=list)  # every accepted create, as Twilio saw it
    # To-number -> answers to give before accepting: (HTTP status, Twilio error code).
    failures: dict[str, deque[tuple[int, int]]] = field(default_factory=dict)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    base_url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self._create)
        app.router.add_get("/media/{name}", self._media)
        return app

    def fail(self, to: str, *answers: tuple[int, int]) -> None:
        self.failures.setdefault(to, deque()).extend(answers)

    def add_media(self, name: str, data: bytes, content_type: str) -> str:
        self.media[name] = (data, content_type)
        return f"{self.base_url}/media/{name}"

    def _authorized(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        try:
            creds = aiohttp.BasicAuth.decode(auth)
        except ValueError:
            return False
        return (creds.login, creds.password) == (self.account_sid, self.auth_token)

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorized(request) or request.match_info["account"] != self.account_sid:
            return _error(401, 20003, "Authenticate")
        form = dict(await request.post())
        to = str(form.get("To", ""))
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        pending = self.failures.get(to)
        if pending:
            status, code = pending.popleft()
            return _error(status, code, f"fake failure {code}")
        now = format_datetime(datetime.now(UTC), usegmt=True)
        message = {k: str(v) for k, v in form.items()}
        message["Sid"] = sid()
        self.sent.append(message)
        return web.json_response(status=201, data={
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": message.get("Body", ""),
            "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": message.get("From"),
            "messaging_service_sid": message.get("MessagingServiceSid"), "num_media": "0",
            "num_segments": "1", "price": None, "price_unit": "USD", "sid": message["Sid"], "status": "queued",
            "subresource_uris": {}, "to": to, "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{message['Sid']}.json",
        })

    async def _media(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        found = self.media.get(request.match_info["name"])
        if found is None:
            return _error(404, 20404, "not found")
        return web.Response(body=found[0], content_type=found[1])

    # --- Twilio calling the hub ---
    def signature(self, url: str, params: dict[str, str]) -> str:
        return RequestValidator(self.auth_token).compute_signature(url, params)

    async def post_signed(self, http, public_url: str, local_url: str, params: dict[str, str], *,
                          signature: str | None = "sign") -> aiohttp.ClientResponse:
        """POST a form to the hub at `local_url`, signed for `public_url` (the URL Twilio was
        given: the hub behind a proxy). signature=None sends none; any other string is sent as is."""
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature == "sign":
            headers["X-Twilio-Signature"] = self.signature(public_url, params)
        elif signature is not None:
            headers["X-Twilio-Signature"] = signature
        return await http.post(local_url, data=urlencode(params), headers=headers)

    async def status_callback(self, http, message: dict[str, str], status: str,
                              error_code: str | None = None) -> aiohttp.ClientResponse:
        """Report a status for a message the hub sent, to the StatusCallback it gave."""
        callback = message["StatusCallback"]
        parts = urlsplit(callback)
        params = {"MessageSid": message["Sid"], "SmsSid": message["Sid"], "MessageStatus": status,
                  "SmsStatus": status, "AccountSid": self.account_sid, "From": message.get("From", ""),
                  "To": message["To"], "ApiVersion": "2010-04-01"}
        if error_code:
            params["ErrorCode"] = error_code
        local = parts.path + (f"?{parts.query}" if parts.query else "")  # `http` is the hub's TestClient
        return await self.post_signed(http, callback, local, params)


def inbound_params(*, frm: str, body: str, message_sid: str | None = None, to: str = OUR_NUMBER,
                   media: list[tuple[str, str]] = ()) -> dict[str, str]:
    """The form Twilio POSTs for an incoming message."""
    message_sid = message_sid or sid()
    params = {"ToCountry": "US", "SmsMessageSid": message_sid, "NumMedia": str(len(media)),
              "SmsSid": message_sid, "SmsStatus": "received", "Body": body, "To": to, "NumSegments": "1",
              "MessageSid": message_sid, "AccountSid": ACCOUNT_SID, "From": frm, "ApiVersion": "2010-04-01"}
    for i, (url, content_type) in enumerate(media):
        params[f"MediaUrl{i}"] = url
        params[f"MediaContentType{i}"] = content_type
    return params


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(status=status, data={
        "code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status})
