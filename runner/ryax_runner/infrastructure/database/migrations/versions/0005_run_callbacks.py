"""The callbacks of HTTP endpoint calls are recorded with their run (`run_callbacks`) and
delivered once the run ended, also after a restart, each attempt counted.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "run_callbacks",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("delivered_at", TZ, nullable=True),
    )
    op.create_index(
        "ix_run_callbacks_pending",
        "run_callbacks",
        ["next_attempt_at"],
        postgresql_where=sa.text("state = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_run_callbacks_pending", table_name="run_callbacks")
    op.drop_table("run_callbacks")
