"""Tables of the back-office integration (issue 7). They share `metadata` with hub.storage.models."""

from __future__ import annotations

from sqlalchemy import Column, String, Table, Text

from hub.storage.models import UTCDateTime, metadata

# One row per command applied or refused, keyed by the AMQP message_id: written in the command's own
# transaction, so a redelivered or re-sent command (same message_id) is recognised and not applied
# twice. `result` is what the command.completed event said, returned again for a duplicate.
command_log = Table(
    "command_log",
    metadata,
    Column("message_id", String(255), primary_key=True),
    Column("command", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),  # completed, rejected
    Column("result", Text, nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)
