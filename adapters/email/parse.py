"""An RFC 5322 message (bytes) as an Interaction, with the attachment bytes to store. Pure: no I/O.

Parsed with the stdlib `email` package (policy=default). Mail in the wild is often malformed, so
every header is read defensively: a header the modern policy cannot parse is decoded from its raw
form instead, a charset Python does not know falls back to UTF-8 with replacement characters, and
the only exception that leaves this module is PayloadError (for input that is not a message at
all, or is larger than allowed).

Auto-replies (Auto-Submitted other than `no`, X-Autoreply, Precedence: auto_reply) are tagged
`auto_reply` and bounces (multipart/report; report-type=delivery-status, or mail from
MAILER-DAEMON) are tagged `bounce`; both get kind `event` rather than `message`, so rules can
keep them away from agents. A bounce carries no sender identifiers (a mailer daemon is not a
customer) and says which message failed in `bounce`.
"""

from __future__ import annotations

import email
import email.utils
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from typing import Any

from pydantic import ValidationError

from adapters.base import PayloadError
from schemas import Attachment, Identifier, Interaction

from . import threads
from .html_text import html_to_text
from .mime import RawAttachment, Walk, addresses, header, raw_items
from .mime import walk as walk_parts

PROVIDER = "email"
MAX_ATTACHMENTS = 100
_MAX_TEXT = 262_144
_MAX_HTML = 1_048_576
_MAX_META = 2048


@dataclass(frozen=True)
class Bounce:
    """What a delivery-status report says about a message we sent."""

    original_message_id: str | None
    recipient: str | None
    action: str | None
    status: str | None
    diagnostic: str | None


@dataclass(frozen=True)
class ParsedEmail:
    interaction: Interaction  # attachments carry size and sha256; storage_ref is set once stored
    attachments: tuple[RawAttachment, ...] = ()
    bounce: Bounce | None = None
    dropped_attachments: int = 0


def _party(pairs: list[tuple[str, str]], context: Mapping[str, Any]) -> dict[str, Any] | None:
    if not pairs:
        return None
    name, addr = pairs[0]
    idents = []
    try:
        idents.append(Identifier.model_validate({"type": "email", "value": addr}, context=context))
    except ValidationError:
        pass  # an address we cannot normalize names nobody; keep the display name
    return {"identifiers": idents, "display_name": (name or None) and name[:200]}


def _bounce(walk: Walk) -> Bounce:
    per_recipient = next((b for b in walk.status_blocks if header(b, "Final-Recipient")), None)

    def field_of(name: str) -> str | None:
        return header(per_recipient, name) if per_recipient is not None else None

    recipient = field_of("Final-Recipient") or field_of("Original-Recipient")
    if recipient and ";" in recipient:  # "rfc822; someone@example.com"
        recipient = recipient.split(";", 1)[1].strip()
    original = header(walk.original_headers, "Message-ID") if walk.original_headers is not None else None
    return Bounce(original_message_id=threads.normalize_msgid(original), recipient=recipient,
                  action=(field_of("Action") or "").lower() or None, status=field_of("Status"),
                  diagnostic=field_of("Diagnostic-Code"))


def _auto_reply(msg: Message) -> str | None:
    auto = (header(msg, "Auto-Submitted") or "").lower()
    if auto and not auto.startswith("no"):
        return auto.split(";")[0].strip()
    if header(msg, "X-Autoreply") or header(msg, "X-Autorespond"):
        return "x-autoreply"
    if (header(msg, "Precedence") or "").lower() == "auto_reply":
        return "precedence"
    return None


def _is_bounce(msg: Message, sender: list[tuple[str, str]]) -> bool:
    try:
        if msg.get_content_type() == "multipart/report" and \
                (msg.get_param("report-type") or "").lower() == "delivery-status":
            return True
    except Exception:  # noqa: BLE001, S110
        pass
    local = sender[0][1].split("@")[0].lower() if sender else ""
    return local in ("mailer-daemon", "postmaster")


def _occurred_at(msg: Message, now: datetime) -> datetime:
    value = header(msg, "Date")
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value)
            return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
        except Exception:  # noqa: BLE001, S110 - unparseable dates are common; the arrival time will do
            pass
    return now


def _clip(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


def parse(raw: bytes, *, now: datetime, context: Mapping[str, Any] | None = None,
          max_bytes: int | None = None, via: str | None = None) -> ParsedEmail:
    """Parse one message. `now` stands in for a missing or unreadable Date; `context` is the
    hub's validation context (AdapterDeps.validation_context); `via` (smtp, imap) is recorded."""
    if not isinstance(raw, (bytes, bytearray)):
        raise PayloadError("message", f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    if max_bytes is not None and len(raw) > max_bytes:
        raise PayloadError("message", f"{len(raw)} bytes is over the limit of {max_bytes}")
    if not raw.strip():
        raise PayloadError("message", "empty")
    try:
        msg: EmailMessage = email.message_from_bytes(raw, policy=policy.default)  # type: ignore[assignment]
    except Exception as exc:  # noqa: BLE001 - the feed parser rarely raises, but it may
        raise PayloadError("message", f"unparseable: {exc}") from None
    if not raw_items(msg):
        raise PayloadError("message", "no header fields")
    context = dict(context or {})

    message_id = threads.normalize_msgid(header(msg, "Message-ID"))
    in_reply_to = next(iter(threads.msgid_list(header(msg, "In-Reply-To"))), None)
    references = threads.msgid_list(header(msg, "References"))
    ref = threads.provider_ref(message_id, raw)
    root = threads.thread_root(message_id or ref, in_reply_to, references)

    sender_pairs = addresses(msg, "From") or addresses(msg, "Sender")
    walk = Walk()
    walk_parts(msg, walk)
    text = "\n\n".join(t for t in walk.plain if t.strip()) or None
    html = "\n".join(walk.html) or None
    if text is None and html:
        text = html_to_text(html) or None

    tags: list[str] = []
    metadata: dict[str, Any] = {"email.via": via} if via else {}
    bounce = None
    auto = _auto_reply(msg)
    if _is_bounce(msg, sender_pairs):
        tags.append("bounce")
        bounce = _bounce(walk)
        for key, value in (("original_message_id", bounce.original_message_id),
                           ("recipient", bounce.recipient), ("action", bounce.action),
                           ("status", bounce.status), ("diagnostic", bounce.diagnostic)):
            if value:
                metadata[f"email.bounce.{key}"] = value[:_MAX_META]
    elif auto:  # a bounce is usually auto-submitted too; it is tagged for what it is
        tags.append("auto_reply")
        metadata["email.auto_submitted"] = auto[:_MAX_META]
    if message_id:
        metadata["email.message_id"] = message_id[:_MAX_META]
    if in_reply_to:
        metadata["email.in_reply_to"] = in_reply_to[:_MAX_META]
    if references:
        # The hub's outbound threading reads `references` (space-separated) to build a reply's
        # References; when too long, keep the root and the most recent, as RFC 5322 suggests.
        kept = list(references)
        while len(kept) > 1 and len(" ".join(kept)) > _MAX_META:
            del kept[1]
        if len(" ".join(kept)) <= _MAX_META:
            metadata["references"] = " ".join(kept)

    attachments = walk.attachments[:MAX_ATTACHMENTS]
    dropped = len(walk.attachments) - len(attachments)
    if dropped:
        metadata["email.attachments_dropped"] = dropped

    sender = _party(sender_pairs, context)
    if sender is not None and bounce is not None:
        sender["identifiers"] = []  # a mailer daemon is not a customer
    recipients = [p for p in (_party([pair], context) for pair in
                              (addresses(msg, "To") + addresses(msg, "Cc"))[:100]) if p is not None]
    language = header(msg, "Content-Language")
    doc = {
        "channel": "email", "direction": "inbound",
        "kind": "event" if tags else "message",
        "provider": PROVIDER, "provider_ref": ref,
        "occurred_at": _occurred_at(msg, now),
        "conversation_key": threads.conversation_key(root),
        "sender": sender, "recipients": recipients,
        "subject": _clip(header(msg, "Subject"), 998),
        "content": {"text": _clip(text, _MAX_TEXT), "html": _clip(html, _MAX_HTML),
                    "language": language if language and len(language) <= 35 else None},
        "attachments": [_attachment_meta(a) for a in attachments],
        "metadata": metadata, "tags": tags,
    }
    try:
        interaction = Interaction.model_validate(doc, context=context)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        raise PayloadError(".".join(str(p) for p in first["loc"]), first["msg"]) from None
    return ParsedEmail(interaction, tuple(attachments), bounce, dropped)


def _attachment_meta(att: RawAttachment) -> dict[str, Any]:
    return {"filename": att.filename, "content_type": att.content_type, "size": len(att.data),
            "sha256": hashlib.sha256(att.data).hexdigest()}


def with_storage_refs(parsed: ParsedEmail, refs: list[str]) -> Interaction:
    """The interaction with each attachment's blob-store ref filled in (same order as stored)."""
    stored: list[Attachment] = [
        meta.model_copy(update={"storage_ref": ref}) for meta, ref in zip(parsed.interaction.attachments, refs)
    ]
    return parsed.interaction.model_copy(update={"attachments": stored})
