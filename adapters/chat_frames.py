"""The web chat's websocket frames (adapters.chat): JSON objects with a `type`, parsed without I/O.

Visitor to hub: `hello` (first, once: the visitor's signed id if the widget has one, and optionally
a name and an email), `message` (the widget's own id for it, and the text), `delivered` (the id of
an agent's message the widget has shown). Hub to visitor: `welcome`, `ack`, `message`, `error`.
A frame that does not parse is answered with an `error` frame naming the field, never a crash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

# The widget's id for a message it sends: the dedupe key of its resends after a dropped connection.
ClientId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
_VISITOR_PREFIX = "v"
_SIGNED = b"omnihub-chat-visitor:"


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hello(_Frame):
    type: Literal["hello"]
    visitor: Annotated[str, StringConstraints(max_length=200)] | None = None  # "<id>.<signature>"
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=254)] | None = None


class Say(_Frame):
    type: Literal["message"]
    id: ClientId
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Delivered(_Frame):
    type: Literal["delivered"]
    id: uuid.UUID


Frame = Annotated[Hello | Say | Delivered, Field(discriminator="type")]
_FRAME: TypeAdapter[Hello | Say | Delivered] = TypeAdapter(Frame)
_TAGS = ("hello", "message", "delivered")


class FrameError(ValueError):
    """A frame refused; `field` names what is wrong (`frame` for the frame as a whole)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def frame(self, **extra: Any) -> dict[str, Any]:
        return {"type": "error", "field": self.field, "message": self.message, **extra}


def parse(data: str | bytes, max_text: int) -> Hello | Say | Delivered:
    try:
        frame = _FRAME.validate_json(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        if err["type"] == "json_invalid":
            raise FrameError("frame", "not JSON") from None
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            raise FrameError("type", f"one of {', '.join(_TAGS)}") from None
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] in _TAGS:
            loc = loc[1:]
        raise FrameError(".".join(loc) or "frame", err["msg"]) from None
    if isinstance(frame, Say) and len(frame.text) > max_text:
        raise FrameError("text", f"at most {max_text} characters")
    return frame


def new_visitor_id() -> str:
    return _VISITOR_PREFIX + secrets.token_urlsafe(16)


def sign(visitor_id: str, secret: bytes) -> str:
    mac = hmac.new(secret, _SIGNED + visitor_id.encode(), hashlib.sha256).digest()
    return f"{visitor_id}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def verify(token: str, secret: bytes) -> str | None:
    """The visitor id a token names, if the hub signed it; else None."""
    visitor_id, dot, _ = token.rpartition(".")
    if not dot or not visitor_id.startswith(_VISITOR_PREFIX) or len(visitor_id) > 64:
        return None
    # As bytes: compare_digest raises TypeError on a str with non-ASCII characters.
    return visitor_id if hmac.compare_digest(sign(visitor_id, secret).encode(), token.encode()) else None


def dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
