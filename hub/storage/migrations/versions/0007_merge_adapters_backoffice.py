"""merge the adapters (issue 4) and back-office (issue 7) branches

Revision ID: 0007
Revises: 0006_adapters, 0006_backoffice
Create Date: 2026-11-23
"""

revision = "0007"
down_revision = ("0006_adapters", "0006_backoffice")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
