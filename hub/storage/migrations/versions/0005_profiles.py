"""profiles: the DESIGN section 4 fields, and merge suggestions

Revision ID: 0005_profiles
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_profiles"
down_revision = "0004"
branch_labels = None
depends_on = None

def _columns() -> list[sa.Column]:
    return [
        sa.Column("given_name", sa.String(length=100), nullable=True),
        sa.Column("family_name", sa.String(length=100), nullable=True),
        sa.Column("locale", sa.String(length=35), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("owner", sa.String(length=100), nullable=True),
        sa.Column("tier", sa.String(length=32), nullable=True),
        sa.Column("segments", sa.Text(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("consents", sa.Text(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("preferred_channels", sa.Text(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("last_purchase_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("frequency", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("monetary", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("value_score", sa.Float(), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        for column in _columns():
            batch_op.add_column(column)
    op.create_table(
        "merge_suggestions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("profile_id", sa.Uuid(), nullable=False),
        sa.Column("other_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("identifiers", sa.Text(), nullable=False),
        sa.Column("interaction_id", sa.Uuid(), nullable=True),
        sa.Column("state", sa.String(length=16), server_default=sa.text("'open'"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], name=op.f("fk_merge_suggestions_profile_id_profiles")),
        sa.ForeignKeyConstraint(["other_id"], ["profiles.id"], name=op.f("fk_merge_suggestions_other_id_profiles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merge_suggestions")),
    )
    with op.batch_alter_table("merge_suggestions", schema=None) as batch_op:
        batch_op.create_index("ix_merge_suggestions_state", ["state", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("merge_suggestions", schema=None) as batch_op:
        batch_op.drop_index("ix_merge_suggestions_state")
    op.drop_table("merge_suggestions")
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        for column in reversed(_columns()):
            batch_op.drop_column(column.name)
