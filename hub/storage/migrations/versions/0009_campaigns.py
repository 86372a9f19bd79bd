"""campaigns, and the campaign each message belongs to

Revision ID: 0009_campaigns
Revises: 0008_templated_sends
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_campaigns"
down_revision = "0008_templated_sends"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cursor", sa.Uuid(), nullable=True),
        sa.Column("targeted", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("queued", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("skipped", sa.Text(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index("ix_campaigns_state", "campaigns", ["state", "start_at"])
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("campaign_id", sa.Uuid(), nullable=True))
        batch.create_index("ix_messages_campaign_id", ["campaign_id"])


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_campaign_id")
        batch.drop_column("campaign_id")
    op.drop_index("ix_campaigns_state", table_name="campaigns")
    op.drop_table("campaigns")
