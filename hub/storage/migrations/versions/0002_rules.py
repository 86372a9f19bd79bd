"""rules: timers, scheduled_actions, schedule_runs, rulesets

Revision ID: 0002_rules
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_rules"
down_revision = "0001"
branch_labels = None
depends_on = None

_PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    op.create_table(
        "timers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interaction_id", sa.Uuid(), nullable=True),
        sa.Column("profile_id", sa.Uuid(), nullable=True),
        sa.Column("ruleset_version", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timers")),
    )
    with op.batch_alter_table("timers", schema=None) as batch_op:
        batch_op.create_index("ix_timers_due", ["due_at"], unique=False,
                              sqlite_where=_PENDING, postgresql_where=_PENDING)
        batch_op.create_index("ix_timers_key", ["key"], unique=False)
        batch_op.create_index("ix_timers_profile_id", ["profile_id"], unique=False)

    op.create_table(
        "scheduled_actions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("profile_id", sa.Uuid(), nullable=True),
        sa.Column("interaction_id", sa.Uuid(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), server_default=sa.text("'pending'"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_actions")),
    )
    with op.batch_alter_table("scheduled_actions", schema=None) as batch_op:
        batch_op.create_index("ix_scheduled_actions_due", ["due_at"], unique=False,
                              sqlite_where=_PENDING, postgresql_where=_PENDING)

    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("profile_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("ran_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_runs")),
        sa.UniqueConstraint("rule", "profile_id", "day", name="uq_schedule_runs_rule_profile_day"),
    )

    op.create_table(
        "rulesets",
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("sources", sa.Text(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_rulesets")),
    )


def downgrade() -> None:
    op.drop_table("rulesets")
    op.drop_table("schedule_runs")
    with op.batch_alter_table("scheduled_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_scheduled_actions_due", sqlite_where=_PENDING, postgresql_where=_PENDING)
    op.drop_table("scheduled_actions")
    with op.batch_alter_table("timers", schema=None) as batch_op:
        batch_op.drop_index("ix_timers_profile_id")
        batch_op.drop_index("ix_timers_key")
        batch_op.drop_index("ix_timers_due", sqlite_where=_PENDING, postgresql_where=_PENDING)
    op.drop_table("timers")
