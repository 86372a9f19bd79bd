"""A Standard Webhooks receiver for the HTTP connector tests: verifies every signature with the
reference implementation and dedupes on webhook-id, as a real receiver does."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Receiver:
    def __init__(self, secret: str) -> None:
        self.webhook = Webhook(secret)
        self.accepted: set[str] = set()
        self.deliveries: Counter[str] = Counter()
        self.invalid = 0
        self.fail_ids: set[str] = set()  # answered 500 until removed: the target "fixed"
        self.throttle_first: int = 0  # answer 429 with Retry-After to each id's first N requests
        self.first_seen: dict[str, float] = {}
        self.accepted_at: dict[str, float] = {}
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            self.webhook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.invalid += 1
            return web.Response(status=401)
        msg_id = request.headers["webhook-id"]
        self.deliveries[msg_id] += 1
        self.first_seen.setdefault(msg_id, time.monotonic())
        if msg_id in self.fail_ids:
            return web.Response(status=500, text="the legacy endpoint cannot take this one")
        if self.deliveries[msg_id] <= self.throttle_first:
            return web.Response(status=429, headers={"Retry-After": "1"})
        if msg_id not in self.accepted:
            self.accepted.add(msg_id)
            self.accepted_at[msg_id] = time.monotonic()
        return web.Response(status=204)

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            app = web.Application()
            app.router.add_post("/hook", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}/hook"
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
