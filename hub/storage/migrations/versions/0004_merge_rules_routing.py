"""Merge the rules (0002) and routing (0003) branches, which were built side by side.

Revision ID: 0004
Revises: 0002_rules, 0003_routing
Create Date: 2026-11-23
"""

revision = "0004"
down_revision = ("0002_rules", "0003_routing")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
