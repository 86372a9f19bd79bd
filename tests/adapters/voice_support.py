"""Helpers for the voice tests: Twilio's call webhooks signed with twilio's own RequestValidator,
CTI events signed with the Standard Webhooks reference library, and reading a call back from the
hub's API the way a user would (the customer's profile and timeline)."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import text
from standardwebhooks.webhooks import Webhook
from twilio.request_validator import RequestValidator

from hub import keys
from tests.adapters.conftest import PUBLIC_BASE_URL
from tests.adapters.fake_twilio import ACCOUNT_SID, AUTH_TOKEN

OUR_NUMBER = "+15005550006"
CUSTOMER = "+821012345678"
INBOUND = "/channels/voice_twilio/inbound"
STATUS = "/channels/voice_twilio/status"
CTI_PATH = "/v1/cti/events"
CTI_SECRET = "whsec_" + base64.b64encode(b"cti-test-secret-0123456789abcdef").decode()
CTI_OTHER_SECRET = "whsec_" + base64.b64encode(b"not-the-pbx-secret-0123456789abc").decode()

VOICE = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "greeting": "고객센터입니다. 잠시만 기다려 주세요.",
         "language": "ko-KR", "enqueue": "support"}


def call_sid() -> str:
    return "CA" + secrets.token_hex(16)


def call_params(sid: str, *, frm: str = CUSTOMER, to: str = OUR_NUMBER, status: str = "ringing",
                **extra: str) -> dict[str, str]:
    """The form Twilio POSTs when a call comes in (and, with other fields, its later reports)."""
    return {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": sid, "CallStatus": status,
            "Called": to, "Caller": frm, "Direction": "inbound", "From": frm, "FromCountry": "KR", "To": to,
            "ToCountry": "US", **extra}


async def twilio_post(hub, path: str, params: dict[str, str], *, signature: str | None = "sign",
                      signed_url: str | None = None, token: str = AUTH_TOKEN):
    """POST a form as Twilio does, signed for the public URL Twilio was given."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature == "sign":
        headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(
            signed_url or PUBLIC_BASE_URL + path, params)
    elif signature is not None:
        headers["X-Twilio-Signature"] = signature
    return await hub.post(path, data=urlencode(params), headers=headers)


def cti_headers(body: bytes, *, secret: str = CTI_SECRET, at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    msg_id = f"msg_{uuid.uuid4().hex}"
    signature = Webhook(secret).sign(msg_id, at, body.decode("utf-8", "replace"))
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature,
            "Content-Type": "application/json"}


async def cti_post(hub, event: Any, *, headers: dict[str, str] | None = None, **sign: Any):
    body = event if isinstance(event, bytes) else json.dumps(event, ensure_ascii=False).encode()
    return await hub.post(CTI_PATH, data=body, headers=headers if headers is not None else cti_headers(body, **sign))


def cti_event(kind: str, call_id: str = "pbx-0001", *, time: str = "2026-11-23T10:00:00+09:00",
              **fields: Any) -> dict[str, Any]:
    return {"type": kind, "call_id": call_id, "time": time, "caller": "010-1234-5678", "called": "02-555-0100",
            **fields}


async def profile_of(hub, ident: str) -> dict:
    resp = await hub.get(f"/v1/profiles?identifier={quote(ident)}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def timeline(hub, ident: str = f"phone:{CUSTOMER}") -> list[dict]:
    profile = await profile_of(hub, ident)
    return (await (await hub.get(f"/v1/profiles/{profile['id']}/timeline")).json())["items"]


async def outbox_keys(hub) -> list[str]:
    async with hub.app[keys.ENGINE].connect() as conn:
        return list((await conn.execute(text("SELECT routing_key FROM outbox ORDER BY seq"))).scalars())
