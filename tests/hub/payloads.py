"""Contact-schema payloads for tests."""

from __future__ import annotations

import itertools
from typing import Any

_refs = itertools.count(1)


def sms(phone: str = "010-1234-5678", *, ref: str | None = None, text: str = "배송지 변경 부탁드립니다",
        name: str | None = "Kim Minji", **extra: Any) -> dict[str, Any]:
    return {
        "channel": "sms", "direction": "inbound", "kind": "message", "provider": "acme-gateway",
        "provider_ref": ref or f"MSG-{next(_refs):06d}", "occurred_at": "2026-11-23T10:00:00+09:00",
        "sender": {"identifiers": [{"type": "phone", "value": phone}], "display_name": name},
        "content": {"text": text}, **extra,
    }


def with_identifiers(*idents: tuple[str, str], channel: str = "chat", ref: str | None = None) -> dict[str, Any]:
    return {
        "channel": channel, "direction": "inbound", "provider": "test",
        "provider_ref": ref or f"REF-{next(_refs):06d}", "occurred_at": "2026-11-23T10:00:00Z",
        "sender": {"identifiers": [{"type": t, "value": v} for t, v in idents]},
        "content": {"text": "hello"},
    }
