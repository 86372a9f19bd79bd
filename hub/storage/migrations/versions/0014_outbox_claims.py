"""outbox leases: the relay that leased a run of rows, until when, through which row (issue 15)

Revision ID: 0014_outbox_claims
Revises: 0013_ws_tickets
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_outbox_claims"
down_revision = "0013_ws_tickets"
branch_labels = None
depends_on = None

LEASES_WHERE = "published_at IS NULL AND claimed_until IS NOT NULL"


def upgrade() -> None:
    # Nullable with no default: on PostgreSQL adding them rewrites nothing, however long the outbox.
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("claimed_through", sa.BigInteger(), nullable=True))
        batch.create_index("ix_outbox_leases", ["seq"], sqlite_where=sa.text(LEASES_WHERE),
                           postgresql_where=sa.text(LEASES_WHERE))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_leases", sqlite_where=sa.text(LEASES_WHERE),
                         postgresql_where=sa.text(LEASES_WHERE))
        batch.drop_column("claimed_through")
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
