"""Tables for the channel adapters (issue 4): outbound messages and adapters' durable state.

They share `metadata` with hub.storage.models so migrations and test resets see one schema.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text, UniqueConstraint, Uuid, text

from hub.storage.models import UTCDateTime, metadata

MESSAGE_STATES = ("queued", "sending", "sent", "delivered", "read", "failed")

# One outbound message. The hub accepts it (queued), a dispatcher hands it to the channel's adapter
# (sending, with a lease so a crashed hub's claim expires), and the provider's status callbacks move
# it on (sent -> delivered | failed). `to_value` is the recipient's identifier: erasure clears it.
messages = Table(
    "messages",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("channel", String(32), nullable=False),
    Column("adapter", String(64), nullable=False),
    Column("profile_id", Uuid),
    Column("to_type", String(32), nullable=False),
    Column("to_value", String(320), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("state", String(16), nullable=False, server_default=text("'queued'")),
    Column("request", Text, nullable=False),  # the accepted request as JSON: subject, text, html, threading
    Column("idempotency_key", String(200)),
    Column("in_reply_to", Uuid),  # the interaction this answers
    Column("provider", String(64)),
    Column("provider_ref", String(200)),
    Column("interaction_id", Uuid),  # the outbound interaction recorded once sent
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("error_code", String(64)),
    Column("error_message", String(500)),
    Column("lease_until", UTCDateTime),
    Column("not_before", UTCDateTime),  # held for quiet hours or a campaign's throttle
    Column("campaign_id", Uuid),  # the campaign that sent it (hub.outbound.campaigns)
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("idempotency_key", name="uq_messages_idempotency_key"),
    Index("ix_messages_provider_ref", "adapter", "provider_ref"),
    Index("ix_messages_pending", "state", "created_at"),
    Index("ix_messages_profile_id", "profile_id"),
    Index("ix_messages_campaign_id", "campaign_id"),
)

CAMPAIGN_STATES = ("scheduled", "running", "sending", "completed")

# A campaign: one templated message to every profile of a segment (hub.outbound.campaigns). `cursor` is the
# last profile id queued, so a hub that stops mid-way resumes there (idempotency keys make a
# repeat of the last chunk harmless); `skipped` counts refusals by reason as JSON.
campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("state", String(16), nullable=False),
    Column("spec", Text, nullable=False),  # the accepted request as JSON
    Column("start_at", UTCDateTime, nullable=False),
    Column("cursor", Uuid),
    Column("targeted", Integer, nullable=False, server_default=text("0")),
    Column("queued", Integer, nullable=False, server_default=text("0")),
    Column("skipped", Text, nullable=False, server_default=text("'{}'")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Index("ix_campaigns_state", "state", "start_at"),
)

# Small values an adapter keeps across restarts, e.g. the IMAP poller's last UID per mailbox.
adapter_state = Table(
    "adapter_state",
    metadata,
    Column("adapter", String(64), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
