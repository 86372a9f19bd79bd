"""The one inbound path the SMTP listener and the IMAP poller share: parse, store the attachment
bytes, ingest, and report a bounce against the message it bounced.

Both paths ingest under provider `email` with the Message-ID as provider_ref, so a message that
arrives by SMTP and is also fetched from the IMAP mailbox (a forwarding rule, a BCC) is stored
once: the second arrival is a repeat and changes nothing. `metadata["email.via"]` records which
path stored it first.
"""

from __future__ import annotations

import uuid
from datetime import UTC

from adapters.base import AdapterDeps, DeliveryStatus, IngestOutcome, StatusUpdate

from .parse import ParsedEmail, parse, with_storage_refs


def parse_inbound(raw: bytes, deps: AdapterDeps, *, max_bytes: int, via: str | None) -> ParsedEmail:
    """Raises PayloadError for input that is not a message we can take (never retryable)."""
    return parse(raw, now=deps.clock(), context=deps.validation_context, max_bytes=max_bytes, via=via)


async def accept(parsed: ParsedEmail, deps: AdapterDeps) -> IngestOutcome:
    """Store, ingest, report. Returns only once the interaction is committed; raises otherwise."""
    refs = [await deps.blobs.put(att.data) for att in parsed.attachments]
    outcome = await deps.ingest(with_storage_refs(parsed, refs))
    bounce = parsed.bounce
    if bounce is not None and bounce.original_message_id and bounce.action == "failed":
        # Reported after the ingest and on every repeat: a sender that retries because this
        # raised gets the report made again, and the hub ignores a status it already has.
        occurred = parsed.interaction.occurred_at.astimezone(UTC)
        await deps.report_status(StatusUpdate(
            provider_ref=bounce.original_message_id, message_id=_our_message_id(bounce.original_message_id),
            status=DeliveryStatus.FAILED, occurred_at=occurred,
            error_code=bounce.status, error_message=(bounce.diagnostic or bounce.recipient or None)))
    return outcome


def _our_message_id(message_id: str) -> uuid.UUID | None:
    """The hub's message id in a Message-ID we generated (`<id>@<our domain>`, smtp_sender)."""
    try:
        return uuid.UUID(message_id.partition("@")[0])
    except ValueError:
        return None
