"""Dead letters: the headers that say why a message died and where it came from.

The hub's command consumer and the connector workers publish a message they give up on to
omnihub.dead themselves, with these headers, before acking it: the reason travels with the
message. The broker dead-letters on its own too (a quorum queue's delivery limit, a reject) and
then writes `x-death` instead; `describe` reads both, so `omnihub dlq` shows either kind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pika

PREFIX = "x-omnihub-"
REASON = "x-omnihub-reason"  # a short code: invalid, unknown_command, not_json, failed, ...
ERROR = "x-omnihub-error"  # the detail (never the message body: it may hold personal data)
ATTEMPTS = "x-omnihub-attempts"
QUEUE = "x-omnihub-queue"  # the queue the message died in
ORIGINAL_EXCHANGE = "x-omnihub-original-exchange"
ORIGINAL_ROUTING_KEY = "x-omnihub-original-routing-key"
DEAD_AT = "x-omnihub-dead-at"  # unix seconds
REPLAYED = "x-omnihub-replayed"  # how many times `omnihub dlq replay` sent it back
# Kept across a replay, so a message that dies again still names its first route.
_KEPT = (ORIGINAL_EXCHANGE, ORIGINAL_ROUTING_KEY, REPLAYED)
MAX_ERROR = 1000
PERSISTENT = 2


def dead_headers(headers: dict[str, Any] | None, *, exchange: str, routing_key: str, queue: str,
                 reason: str, error: str, attempts: int) -> dict[str, Any]:
    out = {k: v for k, v in (headers or {}).items() if not k.startswith(PREFIX) or k in _KEPT}
    out.setdefault(ORIGINAL_EXCHANGE, exchange)
    out.setdefault(ORIGINAL_ROUTING_KEY, routing_key)
    out.update({REASON: reason, ERROR: error[:MAX_ERROR], ATTEMPTS: attempts, QUEUE: queue,
                DEAD_AT: int(time.time())})
    return out


def dead_properties(props: pika.BasicProperties, headers: dict[str, Any]) -> pika.BasicProperties:
    """The message's own properties (message_id above all: consumers dedupe on it) plus the headers."""
    return pika.BasicProperties(
        content_type=props.content_type, content_encoding=props.content_encoding, headers=headers,
        delivery_mode=PERSISTENT, priority=props.priority, correlation_id=props.correlation_id,
        reply_to=props.reply_to, message_id=props.message_id, timestamp=props.timestamp, type=props.type,
        app_id=props.app_id,
    )


def replay_headers(headers: dict[str, Any] | None) -> dict[str, Any]:
    out = {k: v for k, v in (headers or {}).items() if not k.startswith(PREFIX) or k in _KEPT}
    out.pop("x-death", None)
    out[REPLAYED] = int(out.get(REPLAYED, 0)) + 1
    return out


@dataclass(frozen=True)
class DeadLetter:
    """What `omnihub dlq` shows of one dead message."""

    message_id: str | None
    reason: str
    error: str
    queue: str
    exchange: str
    routing_key: str
    attempts: int
    dead_at: int | None
    replayed: int

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def describe(props: pika.BasicProperties, routing_key: str) -> DeadLetter:
    headers = props.headers or {}
    if REASON in headers:
        return DeadLetter(
            props.message_id, _text(headers[REASON]), _text(headers.get(ERROR, "")),
            _text(headers.get(QUEUE, routing_key)), _text(headers.get(ORIGINAL_EXCHANGE, "")),
            _text(headers.get(ORIGINAL_ROUTING_KEY, "")), int(headers.get(ATTEMPTS, 0)),
            _int(headers.get(DEAD_AT)), int(headers.get(REPLAYED, 0)))
    deaths = headers.get("x-death") or []
    if deaths:  # dead-lettered by the broker: the first entry is the latest death
        death = deaths[0]
        keys = death.get("routing-keys") or [routing_key]
        at = death.get("time")
        return DeadLetter(
            props.message_id, f"broker:{_text(death.get('reason', '?'))}",
            f"dead-lettered by the broker ({_text(death.get('reason', '?'))})",
            _text(death.get("queue", routing_key)),
            _text(headers.get(ORIGINAL_EXCHANGE, death.get("exchange", ""))),
            _text(headers.get(ORIGINAL_ROUTING_KEY, _text(keys[0]))),
            int(death.get("count", 1)), int(at.timestamp()) if hasattr(at, "timestamp") else _int(at),
            int(headers.get(REPLAYED, 0)))
    return DeadLetter(props.message_id, "unknown", "", routing_key, "", routing_key, 0, None,
                      int(headers.get(REPLAYED, 0)))


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
