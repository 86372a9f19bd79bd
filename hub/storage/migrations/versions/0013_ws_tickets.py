"""one-time websocket tickets (issue 17)

Revision ID: 0013_ws_tickets
Revises: 0012_login_security
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_ws_tickets"
down_revision = "0012_login_security"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ws_tickets",
        sa.Column("ticket_sha256", sa.String(length=64), primary_key=True),
        sa.Column("credential_sha256", sa.String(length=64), nullable=False),
        sa.Column("credential_kind", sa.String(length=8), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ws_tickets")
