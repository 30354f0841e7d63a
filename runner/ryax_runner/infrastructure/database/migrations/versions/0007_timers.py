"""The built-in timer triggers' schedules (`timers`): one row per deployment whose trigger is
emitgw, crongw or runonce, with its next due time, so that a restart neither fires twice nor
skips a fire (see domain/timers.py).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "timers",
        sa.Column("deployment_id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("anchor_at", TZ, nullable=False),
        sa.Column("next_fire_at", TZ, nullable=True),
        sa.Column("last_fired_at", TZ, nullable=True),
        sa.Column("last_run_id", sa.String(64), nullable=False),
        sa.Column("fires", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("timers")
