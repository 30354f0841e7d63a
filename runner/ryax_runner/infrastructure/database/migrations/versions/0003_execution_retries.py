"""Executions keep their infrastructure retries: how many attempts before this one were lost
with their worker (`infra_retries`), and the attempt this one replaces (`retry_of`).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "executions",
        sa.Column("infra_retries", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column("executions", sa.Column("retry_of", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("executions", "retry_of")
    op.drop_column("executions", "infra_retries")
