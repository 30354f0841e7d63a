"""The outbox's retry columns: a row that cannot be published is set aside and retried.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from ryax_kit.messaging.outbox import downgrade_outbox_retries, upgrade_outbox_retries

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_outbox_retries(op)


def downgrade() -> None:
    downgrade_outbox_retries(op)
