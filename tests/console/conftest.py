"""A real hub on a real port, and a real headless Chromium driven by Playwright, for the console.

The hub (with its Twilio SMS adapter talking to the local fake Twilio of tests/adapters) runs on an
event loop of its own in a background thread, so the tests can drive Playwright's synchronous API
and keep one browser for the whole module. Without Debian's chromium or the playwright package the
tests skip with the reason, or fail under OMNIHUB_REQUIRE_SERVICES=1 (tests/services.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hub import keys
from hub.access import store as auth_store
from hub.access.auth import KEY_PREFIX, hash_password, new_secret
from hub.app import create_app
from hub.settings import load_settings
from tests.adapters.conftest import PUBLIC_BASE_URL
from tests.adapters.fake_twilio import OUR_NUMBER, FakeTwilio, inbound_params
from tests.services import unavailable

AGENT_USER, AGENT_PASSWORD = "kim.lee", "kims-console-password"
CHROMIUM = os.environ.get("OMNIHUB_TEST_CHROMIUM", "/usr/bin/chromium")
TWILIO_INBOUND = "/channels/sms_twilio/inbound"

ROUTING = {
    "queues": [{"name": "support", "sla_s": 60}],
    "agents": [{"id": "kim", "display_name": "Kim Agent"}],
    "poll_interval_s": 0.1,
    # Long enough that no offer expires while a test looks at it; the countdown still shows.
    "router": {"offer_timeout_s": 120},
}
# Texts and chats from customers go to the support queue; email is history only.
RULES = """
rules:
  - name: texts-to-support
    on: interaction.received
    when:
      all:
        - {field: interaction.channel, op: in, value: [sms, chat]}
        - {field: interaction.direction, op: eq, value: inbound}
    then:
      - route: {queue: support, priority: 5}
"""


CHAT_SECRET = "console-test-chat-secret-0123"
SITE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title><link rel="icon" href="data:,"></head>
<body><h1>A shop that embeds the chat widget</h1>
<script src="{hub}/chat/widget.js" data-title="Chat with us" async></script></body></html>
"""


class LiveHub:
    """The hub app served on 127.0.0.1 from a thread of its own; call into its loop with run().

    With `chat`, the web chat adapter runs too, and `site_url` serves a shop's page embedding the
    widget, from another origin (localhost, not 127.0.0.1), the one allowed_origins names."""

    def __init__(self, tmp: Path, *, chat: bool = False, auth: bool = False) -> None:
        self.tmp = tmp
        self.chat = chat
        self.auth = auth  # auth enabled: agent user AGENT_USER (agent kim); the test's calls use an admin key
        self.site_url = ""
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="console-test-hub", daemon=True)
        self.twilio = FakeTwilio()
        self.url = ""
        self._runners: list[web.AppRunner] = []
        self.http: aiohttp.ClientSession | None = None
        self.app: web.Application | None = None

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.run(self._start())

    def stop(self) -> None:
        try:
            self.run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    async def _serve(self, app: web.Application) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def _start(self) -> None:
        self.twilio.base_url = await self._serve(self.twilio.app())
        adapters: dict[str, Any] = {}
        if self.chat:
            async def shop_page(request: web.Request) -> web.Response:
                return web.Response(text=SITE_PAGE.format(hub=self.url), content_type="text/html")

            site = web.Application()
            site.router.add_get("/", shop_page)
            self.site_url = (await self._serve(site)).replace("127.0.0.1", "localhost")
            adapters["chat"] = {"secret": CHAT_SECRET, "allowed_origins": [self.site_url]}
        rules_dir = self.tmp / "rules"
        rules_dir.mkdir()
        (rules_dir / "console.yaml").write_text(RULES, encoding="utf-8")
        settings = load_settings(
            None, database_url=f"sqlite+aiosqlite:///{self.tmp}/omnihub.db", rules_dir=str(rules_dir),
            blob_dir=str(self.tmp / "blobs"), public_base_url=PUBLIC_BASE_URL, default_region="KR",
            relay_poll_interval_s=0.2, backoffice={"commands_enabled": False}, routing=ROUTING,
            auth={"enabled": self.auth, "key_cache_s": 0},
            adapters={"sms_twilio": {"account_sid": self.twilio.account_sid,
                                     "auth_token": self.twilio.auth_token,
                                     "from_number": OUR_NUMBER, "api_base": self.twilio.base_url},
                      **adapters},
        )
        self.app = create_app(settings)
        self.url = await self._serve(self.app)
        headers = {}
        if self.auth:
            headers["Authorization"] = f"Bearer {await self._add_users()}"
        self.http = aiohttp.ClientSession(base_url=self.url, headers=headers)
        await asyncio.wait_for(self.app[keys.ROUTER].active.wait(), 10)

    async def _add_users(self) -> str:
        """The agent user the console logs in as, and an admin key (returned) for the test's own calls."""
        assert self.app is not None
        key, key_sha256 = new_secret(KEY_PREFIX)
        async with self.app[keys.ENGINE].begin() as conn:
            await auth_store.add_user(conn, username=AGENT_USER, password_hash=hash_password(AGENT_PASSWORD),
                                      role="agent", agent_id="kim", now=datetime.now(UTC))
            await auth_store.add_key(conn, name="test", key_sha256=key_sha256, scopes=["admin"],
                                     now=datetime.now(UTC))
        return key

    async def _stop(self) -> None:
        if self.http is not None:
            await self.http.close()
        for runner in reversed(self._runners):
            await runner.cleanup()

    # --- the hub's HTTP API, as a test sees it ---

    def call(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            assert self.http is not None
            async with self.http.request(method, path, json=json) as resp:
                return resp.status, await resp.json()
        return self.run(go())

    def call_as(self, token: str, method: str, path: str) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            assert self.http is not None
            async with self.http.request(method, path, headers={"Authorization": f"Bearer {token}"}) as resp:
                return resp.status, await resp.json()
        return self.run(go())

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        assert status == 200, (path, status, body)
        return body

    def text_in(self, frm: str, body: str) -> None:
        """The customer texts the hub's number: Twilio's webhook, signed as Twilio signs it."""
        async def go() -> None:
            params = inbound_params(frm=frm, body=body)
            resp = await self.twilio.post_signed(self.http, PUBLIC_BASE_URL + TWILIO_INBOUND, TWILIO_INBOUND,
                                                 params)
            assert resp.status == 200, await resp.text()
        self.run(go())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def hub(request, tmp_path) -> Iterator[LiveHub]:
    """The live hub; `@pytest.mark.parametrize("hub", [{"chat": True}], indirect=True)` adds web chat."""
    live = LiveHub(tmp_path, **getattr(request, "param", {}))
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def page(browser, hub) -> Iterator[Any]:
    """A fresh page (its own context); JavaScript errors on it fail the test."""
    yield from new_page(browser)


def new_page(browser) -> Iterator[Any]:
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def logged(msg: Any) -> None:
        # An API call the hub refused is logged by Chromium too; the page shows it, the tests check that.
        refused = msg.text.startswith("Failed to load resource") and "/v1/" in msg.location.get("url", "")
        if msg.type == "error" and not refused:
            errors.append(f"{msg.text} ({msg.location.get('url')})")

    page.on("console", logged)
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"the page logged errors: {errors}"
