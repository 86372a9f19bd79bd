"""adapters: outbound messages and adapters' durable state

Revision ID: 0006_adapters
Revises: 0005_profiles
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_adapters"
down_revision = "0005_profiles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("adapter", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.Uuid(), nullable=True),
        sa.Column("to_type", sa.String(length=32), nullable=False),
        sa.Column("to_value", sa.String(length=320), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), server_default=sa.text("'queued'"), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("in_reply_to", sa.Uuid(), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("provider_ref", sa.String(length=200), nullable=True),
        sa.Column("interaction_id", sa.Uuid(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("idempotency_key", name="uq_messages_idempotency_key"),
    )
    op.create_index("ix_messages_provider_ref", "messages", ["adapter", "provider_ref"])
    op.create_index("ix_messages_pending", "messages", ["state", "created_at"])
    op.create_index("ix_messages_profile_id", "messages", ["profile_id"])
    op.create_table(
        "adapter_state",
        sa.Column("adapter", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("adapter", "key", name=op.f("pk_adapter_state")),
    )


def downgrade() -> None:
    op.drop_table("adapter_state")
    op.drop_index("ix_messages_profile_id", table_name="messages")
    op.drop_index("ix_messages_pending", table_name="messages")
    op.drop_index("ix_messages_provider_ref", table_name="messages")
    op.drop_table("messages")
