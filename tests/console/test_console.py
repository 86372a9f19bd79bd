"""The agent console in a real browser against a real hub: a customer's text is offered to the
agent, who accepts it, sees who the customer is and what they said before on other channels,
answers on the same channel, and completes the task; a declined offer goes back to the line; a
refusal from the API is shown on the page; a photo the customer sent shows in the page and a
document downloads."""

from __future__ import annotations

import hashlib
import re
import struct
import uuid
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub import keys

from .conftest import AGENT_PASSWORD, AGENT_USER, LiveHub

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips these tests with the reason (or fails them in CI)
    expect = None

CUSTOMER = "+821055550100"  # as Twilio writes a Korean mobile number


def sign_in(page, hub: LiveHub, agent: str = "kim") -> None:
    page.goto(f"{hub.url}/console/?agent={agent}")
    expect(page.get_by_role("status").filter(has_text="Connected as")).to_have_text(f"Connected as {agent}")
    expect(page.locator("#notice")).to_have_text("You are offline: choose Available to receive offers.")
    page.get_by_role("button", name="Available").click()
    expect(page.locator("#presence-value")).to_have_text("available")


def earlier_email(hub: LiveHub) -> str:
    """The customer wrote before, by email, naming their phone number: the same profile."""
    status, body = hub.call("POST", "/v1/interactions", {
        "channel": "email", "direction": "inbound", "kind": "message", "provider": "helpdesk",
        "provider_ref": f"<{uuid.uuid4().hex}@example.com>", "occurred_at": datetime.now(UTC).isoformat(),
        "sender": {"display_name": "Kim Minji", "identifiers": [
            {"type": "email", "value": "minji.kim@example.com"}, {"type": "phone", "value": CUSTOMER}]},
        "subject": "Delivery address for order 1002", "content": {"text": "Please deliver to my office."},
    })
    assert status == 201, body
    return body["profile_id"]


def offer_card(page):
    return page.get_by_role("listitem").filter(has=page.get_by_role("button", name="Accept"))


def test_offer_accept_history_reply_and_complete(page, hub):
    profile_id = earlier_email(hub)
    status, _ = hub.call("PATCH", f"/v1/profiles/{profile_id}", {"tier": "vip", "segments": ["regulars"]})
    assert status == 200
    sign_in(page, hub)

    hub.text_in(CUSTOMER, "Where is my parcel? 주문 1002")
    offer = offer_card(page)
    expect(offer).to_contain_text("Where is my parcel? 주문 1002")
    expect(offer).to_contain_text("Kim Minji")  # an SMS carries no name: the profile's
    expect(offer).to_contain_text("support")
    expect(offer).to_contain_text("sms")
    expect(offer).to_contain_text("priority 15")  # the route's 5, plus 10 for a vip (tier_priority)
    expect(offer).to_contain_text(re.compile(r"expires in \d+ s"))

    offer.get_by_role("button", name="Accept").click()
    expect(offer_card(page)).to_have_count(0)
    [task] = hub.get("/v1/tasks?agent_id=kim")["items"]
    assert task["state"] == "assigned"

    customer = page.locator("#profile")
    expect(customer).to_contain_text("Kim Minji")
    expect(customer).to_contain_text(CUSTOMER)
    expect(customer).to_contain_text("minji.kim@example.com")
    expect(customer).to_contain_text("vip")
    expect(customer).to_contain_text("regulars")
    history = page.locator("#timeline")
    expect(history).to_contain_text("Delivery address for order 1002")  # the earlier email
    expect(history).to_contain_text("Where is my parcel?")

    page.get_by_label("Reply on sms").fill("It left our warehouse today; it arrives tomorrow.")
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator("#reply-status")).to_contain_text("Reply sent on sms")
    message_id = re.search(r"message ([0-9a-f-]{36})", page.locator("#reply-status").inner_text()).group(1)
    message = hub.get(f"/v1/messages/{message_id}")
    assert (message["channel"], message["state"]) == ("sms", "sent")
    assert message["in_reply_to"] == task["interaction_id"]
    assert message["to"] == {"type": "phone", "value": CUSTOMER}
    [sent] = hub.twilio.sent  # what Twilio was asked to deliver
    assert (sent["To"], sent["Body"]) == (CUSTOMER, "It left our warehouse today; it arrives tomorrow.")
    expect(history).to_contain_text("It left our warehouse today")  # the reply joins the history

    page.get_by_label("Disposition").fill("resolved")
    page.get_by_role("button", name="Complete").click()
    expect(page.locator("#notice")).to_have_text("Task completed (resolved)")
    expect(page.locator("#tasks li")).to_have_count(0)
    assert hub.get("/v1/tasks?agent_id=kim")["items"] == []
    status, body = hub.call("POST", f"/v1/tasks/{task['id']}/complete", {})
    assert (status, body["state"]) == (409, "completed")  # the hub keeps it completed
    [kim] = hub.get("/v1/agents")["items"]
    assert kim["used"] == 0 and kim["presence"] == "available"


def test_a_declined_offer_goes_back_to_the_line(page, hub):
    sign_in(page, hub)
    hub.text_in("+821055550111", "Can I change my order?")
    offer = offer_card(page)
    expect(offer).to_contain_text("Can I change my order?")
    offer.get_by_role("button", name="Decline").click()
    expect(offer_card(page)).to_have_count(0)
    expect(page.locator("#notice")).to_contain_text("Offer declined")
    [task] = hub.get("/v1/tasks")["items"]
    assert (task["state"], task["agent_id"]) == ("waiting", None)


def test_an_api_refusal_is_shown_on_the_page(page, hub):
    sign_in(page, hub)
    # A chat routed to the agent: no chat adapter runs on this hub, so a reply cannot be sent.
    status, body = hub.call("POST", "/v1/interactions", {
        "channel": "chat", "direction": "inbound", "kind": "message", "provider": "widget",
        "provider_ref": uuid.uuid4().hex, "occurred_at": datetime.now(UTC).isoformat(),
        "sender": {"display_name": "Lee Dana", "identifiers": [{"type": "chat_visitor", "value": "v-42"}]},
        "content": {"text": "hello?"},
    })
    assert status == 201, body
    offer_card(page).get_by_role("button", name="Accept").click()
    page.get_by_label("Reply on chat").fill("Hi, how can I help?")
    page.get_by_role("button", name="Send reply").click()
    error = page.get_by_role("alert")
    expect(error).to_contain_text("Send reply: 422 no_adapter")
    expect(error).to_contain_text("no adapter runs for channel 'chat'")
    # The draft is kept for another try.
    expect(page.get_by_label("Reply on chat")).to_have_value("Hi, how can I help?")


def test_after_a_dropped_connection_or_a_reload_the_console_shows_what_the_hub_holds(page, hub):
    sockets = []  # each websocket the page opens, passed through to the hub so the test can cut it

    def through(ws):
        sockets.append((ws, ws.connect_to_server()))

    page.route_web_socket(re.compile(r".*/v1/agents/ws.*"), through)
    sign_in(page, hub)
    hub.text_in("+821055550122", "first question")
    hub.text_in("+821055550133", "second question")
    expect(offer_card(page)).to_have_count(2)
    offer_card(page).filter(has_text="first question").get_by_role("button", name="Accept").click()
    expect(page.locator("#tasks li")).to_have_count(1)

    # The network drops: the console says so, reconnects, and the hub re-sends the pending offer.
    page_side, hub_side = sockets[-1]
    hub_side.close()
    page_side.close(code=4000, reason="network dropped")
    expect(page.locator("#connection")).to_contain_text("reconnecting")
    expect(page.locator("#connection")).to_have_text("Connected as kim")
    assert len(sockets) == 2
    expect(offer_card(page)).to_have_count(1)
    expect(offer_card(page)).to_contain_text("second question")
    hub.text_in("+821055550144", "third question")  # offers still arrive on the new connection
    expect(offer_card(page)).to_have_count(2)

    # A reload starts from nothing: the held task and the pending offers come back from the hub.
    page.reload()
    expect(page.locator("#connection")).to_have_text("Connected as kim")
    expect(offer_card(page)).to_have_count(2)
    expect(page.locator("#tasks li")).to_have_count(1)
    page.locator("#tasks li").get_by_role("button").click()
    expect(page.locator("#interaction")).to_contain_text("first question")


@pytest.mark.parametrize("hub", [{"auth": True}], indirect=True)
def test_with_auth_an_agent_logs_in_takes_an_offer_and_logs_out(page, hub):
    page.goto(f"{hub.url}/console/")
    login = page.get_by_role("form", name="Log in")
    expect(login).to_be_visible()  # the hub answered 401: the console asks who you are
    expect(page.locator("#sign-in")).to_be_hidden()
    page.get_by_label("User").fill(AGENT_USER)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#errors")).to_contain_text("invalid_credentials")
    page.get_by_label("Password").fill(AGENT_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # An agent user connects as its own agent at once, its token on the websocket.
    expect(page.get_by_role("status").filter(has_text="Connected as")).to_have_text("Connected as kim")
    expect(login).to_be_hidden()
    expect(page.locator("#user-name")).to_have_text(f"{AGENT_USER} (agent)")
    page.get_by_role("button", name="Available").click()
    expect(page.locator("#presence-value")).to_have_text("available")

    hub.text_in(CUSTOMER, "Is my order ready?")
    offer = offer_card(page)
    expect(offer).to_contain_text("Is my order ready?")
    offer.get_by_role("button", name="Accept").click()
    expect(offer_card(page)).to_have_count(0)
    [task] = hub.get("/v1/tasks?agent_id=kim")["items"]
    assert task["state"] == "assigned"
    expect(page.locator("#profile")).to_contain_text(CUSTOMER)  # its own task's customer
    expect(page.locator("#timeline")).to_contain_text("Is my order ready?")
    token = page.evaluate("sessionStorage.getItem('omnihub.token')")
    assert token and token.startswith("oht_")

    page.get_by_role("button", name="Log out").click()
    expect(login).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('omnihub.token')") is None
    status, _ = hub.call_as(token, "GET", "/v1/auth/me")
    assert status == 401  # the session is over at the hub too
    page.reload()
    expect(login).to_be_visible()


def png(width: int = 3, height: int = 2) -> bytes:
    """A real (red) PNG the browser decodes, so the page can be seen to show it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("hub", [{"auth": True}], indirect=True)
def test_a_photo_shows_in_the_page_and_a_document_downloads(page, hub):
    photo, quote = png(), "%PDF-1.4\n견적서\n%%EOF\n".encode()
    attachments = []
    for data, name, kind in ((photo, "매장 사진.png", "image/png"), (quote, "견적서 2026.pdf", "application/pdf")):
        ref = hub.run(hub.app[keys.BLOBS].put(data))  # where an adapter keeps what a customer sent
        attachments.append({"filename": name, "content_type": kind, "size": len(data),
                            "sha256": hashlib.sha256(data).hexdigest(), "storage_ref": ref})
    status, body = hub.call("POST", "/v1/interactions", {
        "channel": "chat", "direction": "inbound", "kind": "message", "provider": "widget",
        "provider_ref": uuid.uuid4().hex, "occurred_at": datetime.now(UTC).isoformat(),
        "sender": {"display_name": "Lee Dana", "identifiers": [{"type": "chat_visitor", "value": "v-77"}]},
        "content": {"text": "The shelf arrived broken: photo and the quote attached"}, "attachments": attachments,
    })
    assert status == 201, body

    # With auth on, as the agent user: the bytes come with its token (a bare <img src> would get 401).
    page.goto(f"{hub.url}/console/")
    page.get_by_label("User").fill(AGENT_USER)
    page.get_by_label("Password").fill(AGENT_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("status").filter(has_text="Connected as")).to_have_text("Connected as kim")
    page.get_by_role("button", name="Available").click()
    offer_card(page).get_by_role("button", name="Accept").click()

    shown = page.locator("#interaction").get_by_role("img", name="매장 사진.png")
    expect(shown).to_be_visible()
    expect(shown).to_have_js_property("naturalWidth", 3)  # decoded: the bytes arrived whole
    expect(page.locator("#interaction figcaption")).to_have_text("매장 사진.png")
    link = page.locator("#interaction").get_by_role("link", name="견적서 2026.pdf")
    expect(link).to_have_attribute("href", re.compile(rf"/v1/interactions/{body['id']}/attachments/1$"))
    with page.expect_download() as started:
        link.click()
    download = started.value
    assert download.suggested_filename == "견적서 2026.pdf"
    assert Path(download.path()).read_bytes() == quote
