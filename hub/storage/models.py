"""Tables (SQLAlchemy Core). The same schema serves SQLite and PostgreSQL; Alembic owns changes."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    text,
)

# Named constraints so Alembic migrations are deterministic on both backends.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), never a BIGINT one.
AutoBigInt = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect):
        if dialect.name == "sqlite":
            # One C-level isoformat instead of process_bind_param plus the dialect's %-format; the
            # same text SQLite's DATETIME stores ('2026-11-23 01:00:00.000000'), so comparisons
            # against values bound by either path agree. The ingest writer binds several a row.
            return _sqlite_utc_text
        return super().bind_processor(dialect)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Cached: a group commit stamps many rows with the same `now`; equal instants give equal text.
@functools.lru_cache(maxsize=4096)
def _sqlite_utc_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


profiles = Table(
    "profiles",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("display_name", String(200)),
    # Set when this profile was merged into another; reads follow it to the survivor.
    Column("merged_into", Uuid, ForeignKey("profiles.id")),
    # Custom attributes (JSON object); rules' set_profile writes here too.
    Column("attributes", Text, nullable=False, server_default=text("'{}'")),
    Column("given_name", String(100)),
    Column("family_name", String(100)),
    Column("locale", String(35)),
    Column("timezone", String(64)),
    Column("birthday", Date),
    Column("owner", String(100)),  # the agent or salesperson who owns the relationship
    Column("tier", String(32)),
    # JSON text, like attributes: the same on SQLite and PostgreSQL, and nothing queries inside them.
    Column("segments", Text, nullable=False, server_default=text("'[]'")),
    Column("consents", Text, nullable=False, server_default=text("'{}'")),  # {"sms:marketing": {...}}
    Column("preferred_channels", Text, nullable=False, server_default=text("'[]'")),
    # RFM from POS transactions. Recency is derived from last_purchase_at when read: stored as
    # days it would be stale the next morning. Floats: a score input, not a ledger.
    Column("last_purchase_at", UTCDateTime),
    Column("frequency", Integer, nullable=False, server_default=text("0")),
    Column("monetary", Float, nullable=False, server_default=text("0")),
    Column("value_score", Float),
    Column("erased_at", UTCDateTime),
)

identifiers = Table(
    "identifiers",
    metadata,
    Column("type", String(32), primary_key=True),
    Column("value", String(320), primary_key=True),
    Column("profile_id", Uuid, ForeignKey("profiles.id"), nullable=False, index=True),
    Column("created_at", UTCDateTime, nullable=False),
)

interactions = Table(
    "interactions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("channel", String(32), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("provider_ref", String(200), nullable=False),
    Column("direction", String(16), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("conversation_key", String(512)),
    Column("profile_id", Uuid, ForeignKey("profiles.id"), index=False),
    Column("priority", Integer, nullable=False, server_default=text("0")),
    Column("ruleset_version", String(64)),
    # The whole contact-schema document as JSON text: the columns above are what queries need.
    Column("document", Text, nullable=False),
    # Twilio and others retry webhooks; this constraint is what makes a retry a no-op.
    UniqueConstraint("channel", "provider", "provider_ref", name="uq_interactions_provider_ref"),
    Index("ix_interactions_profile_timeline", "profile_id", "occurred_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", AutoBigInt, primary_key=True, autoincrement=True),
    # Unique by construction (UUIDv7); no index: nothing looks events up by id on the write path,
    # and each index is one more B-tree insert per event in the ingest transaction.
    Column("event_id", Uuid, nullable=False),
    Column("type", String(64), nullable=False),
    Column("routing_key", String(255), nullable=False),
    Column("subject", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    # The serialized CloudEvent, written once so the relay never re-serializes.
    Column("body", Text, nullable=False),
    Column("published_at", UTCDateTime),
    # Set when the broker returned the message as unroutable: kept for replay, not lost.
    Column("returned_at", UTCDateTime),
    # Set (with published_at) when the row can never be published, e.g. a key pika cannot encode.
    Column("failed_reason", Text),
    # Set on the first row of a run of rows a relay leased to publish, through claimed_through
    # (hub.broker.outbox_store): one hub publishes each event though several share the database.
    Column("claimed_by", String(100)),
    Column("claimed_until", UTCDateTime),
    Column("claimed_through", BigInteger),
    Index(
        "ix_outbox_pending",
        "seq",
        sqlite_where=text("published_at IS NULL"),
        postgresql_where=text("published_at IS NULL"),
    ),
    # The leases now running: a few rows, however long the outbox; new events are not in it.
    Index(
        "ix_outbox_leases",
        "seq",
        sqlite_where=text("published_at IS NULL AND claimed_until IS NOT NULL"),
        postgresql_where=text("published_at IS NULL AND claimed_until IS NOT NULL"),
    ),
)

profile_merges = Table(
    "profile_merges",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("survivor_id", Uuid, ForeignKey("profiles.id"), nullable=False, index=True),
    Column("merged_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("merged_at", UTCDateTime, nullable=False),
    Column("reason", String(200), nullable=False),
    # What moved (identifier keys, interaction ids, field values), so a merge can be undone.
    Column("moved", Text, nullable=False),
)

# Two profiles the merge policy would not merge on its own (two different loyalty ids, say).
merge_suggestions = Table(
    "merge_suggestions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("profile_id", Uuid, ForeignKey("profiles.id"), nullable=False),  # where the interaction went
    Column("other_id", Uuid, ForeignKey("profiles.id"), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("identifiers", Text, nullable=False),  # JSON list of "type:value" that linked them
    Column("interaction_id", Uuid),
    Column("state", String(16), nullable=False, server_default=text("'open'")),  # open, merged, dismissed
    Column("created_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Index("ix_merge_suggestions_state", "state", "created_at"),
)
