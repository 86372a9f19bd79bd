"""The demo's scripted customer, told from outside the hub: every step is an HTTP request to one of
its real entry points, signed the way the real sender would sign it.

The customer and the numbers are fictional (010-5555-01xx is the demo's range, example.com is
reserved for examples). Provider ids are fresh per run, so a demo pointed with --database-url at a
database it has used before tells a new story instead of a page of repeats.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator

CUSTOMER_NAME = "Kim Minji"
CUSTOMER_PHONE = "010-5555-0100"
CUSTOMER_PHONE_E164 = "+821055550100"  # as Twilio writes the From of a Korean mobile
CUSTOMER_EMAIL = "minji.kim@example.com"
AGENTS = ("lee", "park")
_ROUTER_WAIT_S = 5.0  # past this the sign-ins go ahead and show the hub's refusal
SMS_TEXT = "안녕하세요, 주문 1001 환불 부탁드립니다. (refund for order 1001, please)"
EMAIL_SUBJECT = "배송지 변경 / delivery address for order 1002"
EMAIL_TEXT = "Please deliver order 1002 to my office instead. - Kim Minji, 010-5555-0100"


@dataclass(frozen=True)
class Step:
    """One request of the story and what the hub answered."""

    what: str
    request: str
    status: int
    answer: dict[str, Any] | str


@dataclass(frozen=True)
class Story:
    steps: list[Step]
    message_sid: str  # the SMS's provider id: the summary finds the interaction Twilio retried by it


async def tell(http: aiohttp.ClientSession, base_url: str, twilio: dict[str, Any]) -> Story:
    """Agents sign in; the customer texts, then emails with her number in it; both senders retry."""
    await _router_active(http, base_url)
    steps = [await _sign_in(http, base_url, agent) for agent in AGENTS]
    sid = "SM" + uuid.uuid4().hex
    sms = _twilio_sms(sid, twilio)
    steps.append(await _webhook(http, base_url, sms, twilio, f"{CUSTOMER_NAME} texts the shop's number"))
    email = _helpdesk_email("helpdesk-" + uuid.uuid4().hex[:12])
    steps.append(await _interaction(http, base_url, email, "the same customer emails, through the helpdesk"))
    steps.append(await _webhook(http, base_url, sms, twilio, "Twilio delivers the SMS webhook again"))
    steps.append(await _interaction(http, base_url, email, "the helpdesk sends the email again"))
    return Story(steps, sid)


async def _router_active(http: aiohttp.ClientSession, base_url: str) -> None:
    """The router takes its lock and rebuilds from the database after the hub answers HTTP; agents
    can sign in only once it is active."""
    deadline = time.monotonic() + _ROUTER_WAIT_S
    while time.monotonic() < deadline:
        async with http.get(base_url + "/v1/agents") as resp:
            if (await resp.json()).get("active"):
                return
        await asyncio.sleep(0.05)


async def _sign_in(http: aiohttp.ClientSession, base_url: str, agent: str) -> Step:
    path = f"/v1/agents/{agent}/presence"
    async with http.post(base_url + path, json={"presence": "available"}) as resp:
        return Step(f"agent {agent} signs in", f"POST {path}", resp.status, await resp.json())


def _twilio_sms(sid: str, twilio: dict[str, Any]) -> dict[str, str]:
    """The form Twilio posts for an inbound SMS (https://www.twilio.com/docs/messaging/guides/webhook-request)."""
    return {
        "MessageSid": sid, "SmsSid": sid, "AccountSid": twilio["account_sid"],
        "From": CUSTOMER_PHONE_E164, "To": twilio["from_number"], "Body": SMS_TEXT,
        "NumMedia": "0", "NumSegments": "1", "FromCountry": "KR", "ApiVersion": "2010-04-01",
    }


async def _webhook(http: aiohttp.ClientSession, base_url: str, form: dict[str, str], twilio: dict[str, Any],
                   what: str) -> Step:
    path = "/channels/sms_twilio/inbound"
    # Signed exactly as Twilio signs it: the URL it was given plus the sorted form, with the
    # account's auth token (the demo config's fictional one).
    signature = RequestValidator(twilio["auth_token"]).compute_signature(base_url + path, form)
    async with http.post(base_url + path, data=form, headers={"X-Twilio-Signature": signature}) as resp:
        return Step(what, f"POST {path} (X-Twilio-Signature)", resp.status, await resp.text())


def _helpdesk_email(ref: str) -> dict[str, Any]:
    """An email as a helpdesk system forwards it to the generic entry point: it knows the sender's
    phone number from her signature, which is what lets the hub see one customer."""
    return {
        "channel": "email", "direction": "inbound", "kind": "message",
        "provider": "helpdesk", "provider_ref": ref, "occurred_at": datetime.now(UTC).isoformat(),
        "sender": {"display_name": CUSTOMER_NAME, "identifiers": [
            {"type": "email", "value": CUSTOMER_EMAIL}, {"type": "phone", "value": CUSTOMER_PHONE}]},
        "subject": EMAIL_SUBJECT,
        "content": {"text": EMAIL_TEXT, "language": "en"},
    }


async def _interaction(http: aiohttp.ClientSession, base_url: str, body: dict[str, Any], what: str) -> Step:
    async with http.post(base_url + "/v1/interactions", data=json.dumps(body),
                         headers={"Content-Type": "application/json"}) as resp:
        return Step(what, "POST /v1/interactions", resp.status, await resp.json())
