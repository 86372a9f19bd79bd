"""login throttling and the security event log (issue 17)

Revision ID: 0012_login_security
Revises: 0011_auth
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_login_security"
down_revision = "0011_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("key", sa.String(length=200), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True)),
        sa.Column("locked_out_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "security_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("username", sa.String(length=100)),
        sa.Column("key_name", sa.String(length=100)),
        sa.Column("client", sa.String(length=100)),
        sa.Column("actor", sa.String(length=100)),
    )
    op.create_index("ix_security_events_at", "security_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_security_events_at", table_name="security_events")
    op.drop_table("security_events")
    op.drop_table("login_attempts")
