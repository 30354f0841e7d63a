"""Run retention: the projects' own retention (`project_settings`) and the index the cleaner
reads ended runs by (`ix_runs_project_ended`: per project, oldest end first, ended runs only).

Revision ID: 0011
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0007"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "project_settings",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("run_retention_days", sa.Integer, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_index(
        "ix_runs_project_ended",
        "runs",
        ["project_id", "ended_at"],
        postgresql_where=sa.text("state IN ('completed', 'failed', 'cancelled')"),
    )


def downgrade() -> None:
    op.drop_index("ix_runs_project_ended", table_name="runs")
    op.drop_table("project_settings")
