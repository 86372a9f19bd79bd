"""HTTP target: POSTs each event (the CloudEvent JSON as published) to an endpoint, signed.

```yaml
target:
  url: https://billing.example/hooks/omnihub
  secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw   # Standard Webhooks signing secret
  concurrency: 16          # POSTs in flight at once within a batch
  timeout_s: 10
  max_retry_after_s: 30    # longest 429/503 Retry-After honoured before counting a failed try
  headers: {}              # extra request headers (an API key the endpoint wants)
```

Each request carries webhook-id (the event id), webhook-timestamp and webhook-signature, signed by
the `standardwebhooks` package (the reference implementation receivers verify with). 2xx is
delivered; 429 or 503 with Retry-After is waited out and tried again (the endpoint said when);
other failures are reported per event, so the worker retries only those and dead-letters an
event after `attempts` tries. Delivery is at least once: an event POSTed just before a crash is
POSTed again after it, with the same webhook-id, which is what Standard Webhooks receivers dedupe
on. "Exactly once" at this target is therefore the set of ids the receiver has accepted. The
standard signs the body as text, so a body that is not UTF-8 is dead-lettered at once.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook
from tenacity import AsyncRetrying, retry_if_exception

from hub.backoffice.connectors.config import WorkerConfig, parse
from hub.backoffice.connectors.worker import Event, PartialFailure, PermanentError


class HttpTargetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str
    secret: SecretStr
    concurrency: int = Field(16, ge=1, le=256)
    timeout_s: float = Field(10.0, gt=0)
    max_retry_after_s: float = Field(30.0, ge=0)
    headers: dict[str, str] = Field(default_factory=dict)


class HttpStatusError(Exception):
    def __init__(self, status: int, text: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {text[:200]}")
        self.status = status
        self.retry_after = retry_after  # seconds the endpoint asked us to wait (429/503 only)


class HttpTarget:
    def __init__(self, config: HttpTargetConfig) -> None:
        self.config = config
        self._signer = signer(config.secret.get_secret_value())
        self._loop = asyncio.new_event_loop()
        self._session: aiohttp.ClientSession | None = None

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
                connector=aiohttp.TCPConnector(limit=self.config.concurrency))
        return self._session

    def write(self, events: Sequence[Event]) -> None:
        not_text = [e.id for e in events if not _is_utf8(e.body)]
        if not_text:
            raise PermanentError(f"body is not UTF-8 (Standard Webhooks signs it as text): {not_text[:5]}")
        errors = self._loop.run_until_complete(self._post_all(events))
        if errors:
            raise PartialFailure(errors)

    async def _post_all(self, events: Sequence[Event]) -> dict[str, BaseException]:
        session = await self._client()
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(event: Event) -> BaseException | None:
            async with gate:
                try:
                    await self._post(session, event)
                    return None
                except (aiohttp.ClientError, TimeoutError, HttpStatusError) as exc:
                    return exc

        results = await asyncio.gather(*(one(e) for e in events))
        return {e.id: r for e, r in zip(events, results, strict=True) if r is not None}

    async def _post(self, session: aiohttp.ClientSession, event: Event) -> None:
        """POST until 2xx, waiting out each 429/503 Retry-After while the waits add up to no more than
        max_retry_after_s; then, or on any other failure, raise it."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, HttpStatusError) and e.retry_after is not None),
            wait=lambda state: state.outcome.exception().retry_after,  # the endpoint said when
            # idle_for: the waits so far; upcoming_sleep: this one
            stop=lambda state: state.idle_for + state.upcoming_sleep > self.config.max_retry_after_s,
            reraise=True)  # the last HttpStatusError itself, not tenacity's RetryError
        async for attempt in retrying:
            with attempt:
                await self._post_once(session, event)

    async def _post_once(self, session: aiohttp.ClientSession, event: Event) -> None:
        headers = {**self.config.headers, "content-type": "application/json",
                   **self.signed_headers(event.id, int(time.time()), event.body)}
        async with session.post(self.config.url, data=event.body, headers=headers) as resp:
            if 200 <= resp.status < 300:
                return
            text = await resp.text()
            delay = _retry_after(resp.headers.get("Retry-After")) if resp.status in (429, 503) else None
        raise HttpStatusError(resp.status, text, retry_after=delay)

    def signed_headers(self, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        # The package signs f"{id}.{timestamp}.{body}" encoded as UTF-8: for a UTF-8 body, the very
        # bytes received, which is what the receiver's verify() decodes and checks.
        when = datetime.fromtimestamp(timestamp, UTC)
        return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                "webhook-signature": self._signer.sign(msg_id, when, body.decode())}

    def is_transient(self, exc: BaseException) -> bool:
        return True  # failures are per event (PartialFailure); anything else is the endpoint's

    def idle(self) -> None:
        pass

    def close(self) -> None:
        if self._session is not None:
            self._loop.run_until_complete(self._session.close())
        self._loop.close()


def signer(secret: str) -> Webhook:
    """The signer for a `whsec_` secret (the prefix optional). The package decodes leniently, dropping
    characters that are not base64, so the secret is checked strictly first: a typo fails at
    start-up instead of signing with some other key."""
    try:
        base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        return Webhook(secret)
    except (ValueError, EmptyWebhookSecretError):
        raise ValueError("a Standard Webhooks secret is 'whsec_' followed by base64") from None


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds, from either form (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def make_http_target(config: WorkerConfig) -> HttpTarget:
    return HttpTarget(parse(HttpTargetConfig, config.target, "http target"))
