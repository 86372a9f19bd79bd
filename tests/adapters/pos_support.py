"""Helpers for the POS adapter's tests: payloads, and requests signed by the Standard Webhooks
reference implementation (the `standardwebhooks` package), as a POS integrating with us would sign."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from standardwebhooks.webhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"pos-test-secret-0123456789abcdef").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"someone-else-entirely-0123456789").decode()
PATH = "/channels/pos/transactions"


def sale(receipt: str = "R-0001", *, store: str = "S01", total: str = "30000", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "store": store, "register": "2", "receipt": receipt, "time": "2026-11-20T12:00:00+09:00",
        "items": [{"sku": "TEA-01", "name": "녹차 세트", "qty": 2, "unit_price": "12000", "category": "tea"},
                  {"sku": "CUP-07", "name": "Cup", "qty": 1, "unit_price": "6000", "category": "ware"}],
        "total": total, "currency": "KRW",
        "customer": {"loyalty_id": "LOY-77", "phone": "010-1234-5678", "email": "Minji@Example.com", "name": "Kim Minji"},
    }
    body.update(fields)
    return body


def signed_headers(body: bytes, *, secret: str = SECRET, msg_id: str | None = None,
                   at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    # The standard signs text: a body that is not UTF-8 cannot be signed by the reference
    # implementation, and gets a signature over its replacement-decoded text (which cannot verify).
    signature = Webhook(secret).sign(msg_id, at, body.decode("utf-8", "replace"))
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature,
            "Content-Type": "application/json"}


def encode(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


async def post(hub, payload: Any, *, headers: dict[str, str] | None = None, **sign: Any):
    body = payload if isinstance(payload, bytes) else encode(payload)
    return await hub.post(PATH, data=body, headers=headers if headers is not None else signed_headers(body, **sign))


def stale(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)
