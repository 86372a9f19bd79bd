"""tasks carry their conversation, so a later message in it joins the open task

Revision ID: 0010_task_conversation
Revises: 0009_campaigns
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_task_conversation"
down_revision = "0009_campaigns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("conversation_key", sa.String(length=512), nullable=True))
        batch.create_index("ix_tasks_conversation_key", ["conversation_key"])


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_conversation_key")
        batch.drop_column("conversation_key")
