"""back-office: command_log (a command's message_id, applied once)

Revision ID: 0006_backoffice
Revises: 0005_profiles
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_backoffice"
down_revision = "0005_profiles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "command_log",
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("command", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_command_log")),
    )


def downgrade() -> None:
    op.drop_table("command_log")
