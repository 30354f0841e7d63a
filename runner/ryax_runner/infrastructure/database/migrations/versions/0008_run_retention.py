"""Run retention: the projects' own retention (`project_settings`), the index the cleaner
reads ended runs by (`ix_runs_project_ended`: per project, oldest end first, ended runs only)
and the one it finds old lines of the deployments' own processes by (`ix_log_lines_process_at`:
the lines of no run, per deployment, by time).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
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
    op.create_index(
        "ix_log_lines_process_at",
        "log_lines",
        ["deployment_id", "at"],
        postgresql_where=sa.text("run_id = ''"),
    )


def downgrade() -> None:
    op.drop_index("ix_log_lines_process_at", table_name="log_lines")
    op.drop_index("ix_runs_project_ended", table_name="runs")
    op.drop_table("project_settings")
