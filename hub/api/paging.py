"""Every list route under /v1 answers one shape, `{"items": [...], "next": "<cursor>" | null}`, and
pages the same way: `?limit=` (1 to MAX_LIMIT, DEFAULT_LIMIT by default) and `?cursor=` (the `next`
of the page before). A route may add summary fields beside `items` (the router's `active`).

Paging is by key, not by offset: a cursor holds the sort key of the last item handed out, and the
next page starts after it, so an item added or removed between two requests neither repeats nor
hides another. The cursor is opaque to clients (base64url JSON naming its list, so one list's
cursor handed to another is refused, not misread); a cursor that is not one of ours is a 422
naming `cursor`, a bad limit a 422 naming `limit`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from hub.http_errors import dumps

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

T = TypeVar("T")
Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    after: Key | None  # the sort key of the previous page's last item; None: the first page


def _refused(field: str, message: str) -> web.HTTPUnprocessableEntity:
    body = {"error": "validation_failed", "message": f"{field}: {message}",
            "fields": [{"field": field, "message": message}]}
    return web.HTTPUnprocessableEntity(text=dumps(body), content_type="application/json")


def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    raw = json.dumps([kind, list(key)], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(kind: str, text: str, parse_key: Callable[[list[Any]], Key]) -> Key:
    """Raises ValueError for anything but a cursor this hub handed out for list `kind`."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        name, key = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, ValueError, TypeError):
        raise ValueError("not a cursor this hub handed out") from None
    if name != kind or not isinstance(key, list):
        raise ValueError(f"not a cursor of this list ({kind})")
    try:
        return parse_key(key)
    except (ValueError, TypeError, IndexError):
        raise ValueError("not a cursor this hub handed out") from None


def page_request(request: web.Request, kind: str, parse_key: Callable[[list[Any]], Key],
                 *, default: int = DEFAULT_LIMIT) -> PageRequest:
    """`?limit=` and `?cursor=` of a request to list `kind`; a bad one raises a JSON 422 naming it.
    `parse_key` turns a cursor's JSON key back into the sort key (raising ValueError or TypeError
    when it cannot)."""
    text = request.query.get("limit")
    limit = default
    if text is not None:
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise _refused("limit", f"an integer from 1 to {MAX_LIMIT}")
        limit = int(text)
    after = None
    if (cursor := request.query.get("cursor")) is not None:
        try:
            after = _decode_cursor(kind, cursor, parse_key)
        except ValueError as exc:
            raise _refused("cursor", f"{exc}; pass back the `next` of the page before") from None
    return PageRequest(limit, after)


def page_of(items: Iterable[T], key: Callable[[T], Key], page: PageRequest, kind: str) -> tuple[list[T], str | None]:
    """One page of an in-memory list in `key` order, and the cursor of the next (None: the last page)."""
    ordered = sorted(items, key=key)
    if page.after is not None:
        ordered = [item for item in ordered if key(item) > page.after]
    chosen = ordered[:page.limit]
    more = len(ordered) > page.limit
    return chosen, encode_cursor(kind, key(chosen[-1])) if more else None


def listing(items: list[Any], next_cursor: str | None, **summary: Any) -> dict[str, Any]:
    """The body of a list answer: summary fields (if any), then `items` and `next`."""
    return {**summary, "items": items, "next": next_cursor}
