"""Web chat in real browsers: a shop's page (another origin) embeds the hub's widget; the visitor
writes, a rule routes the chat to the support queue, the agent accepts it in the console and
answers, and the answer appears in the visitor's widget."""

from __future__ import annotations

import re

import pytest

from .conftest import LiveHub, new_page
from .test_console import offer_card, sign_in

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips these tests with the reason (or fails them in CI)
    expect = None


@pytest.mark.parametrize("hub", [{"chat": True}], indirect=True, ids=["chat"])
def test_a_visitor_chats_from_the_widget_and_the_agents_reply_appears_in_it(browser, page, hub: LiveHub):
    sign_in(page, hub)
    visitor_pages = new_page(browser)
    visitor = next(visitor_pages)
    try:
        visitor.goto(hub.site_url)
        visitor.get_by_role("button", name="Chat with us").click()
        widget = visitor.get_by_role("dialog", name="Chat with us")
        widget.get_by_label("Message").fill("Do you have the blue one in size M?")
        widget.get_by_role("button", name="Send").click()
        conversation = widget.get_by_role("list", name="Conversation")
        expect(conversation.locator("li.visitor:not(.pending)")).to_have_text("Do you have the blue one in size M?")

        offer = offer_card(page)  # routed to support by the console hub's rule for sms and chat
        expect(offer).to_contain_text("Do you have the blue one in size M?")
        expect(offer).to_contain_text("chat")
        offer.get_by_role("button", name="Accept").click()
        page.get_by_label("Reply on chat").fill("Yes, 3 left in M.")
        page.get_by_role("button", name="Send reply").click()
        expect(page.locator("#reply-status")).to_contain_text(re.compile(r"Reply (sent|delivered) on chat"))

        expect(conversation.locator("li.agent")).to_have_text("Yes, 3 left in M.")
        message_id = re.search(r"message ([0-9a-f-]{36})", page.locator("#reply-status").inner_text()).group(1)
        hub.run(_delivered(hub, message_id))

        # The visitor reloads: the conversation is kept, and the reply is not shown twice.
        visitor.reload()
        widget = visitor.get_by_role("dialog", name="Chat with us")
        expect(widget.get_by_role("list", name="Conversation").locator("li")).to_have_count(2)
    finally:
        next(visitor_pages, None)


async def _delivered(hub: LiveHub, message_id: str) -> None:
    from tests.hub.conftest import eventually

    async def check():
        assert hub.http is not None
        async with hub.http.get(f"/v1/messages/{message_id}") as resp:
            return (await resp.json())["state"] == "delivered"

    await eventually(check, timeout=10)
