"""Sites, deployments, runs, executions, log lines, outbox, processed messages.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("worker_id", sa.String(200), nullable=False),
        sa.Column("backend_kind", sa.String(40), nullable=False),
        sa.Column("node_pools", JSONB, nullable=False),
        sa.Column("labels", JSONB, nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("state_reason", sa.Text, nullable=False),
        sa.Column("registered_at", TZ, nullable=False),
        sa.Column("last_seen_at", TZ, nullable=False),
        sa.Column("last_report_seq", sa.BigInteger, nullable=False),
        sa.Column("last_order_seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("workflow_id", sa.String(64), nullable=False),
        sa.Column("workflow_name", sa.String(200), nullable=False),
        sa.Column("snapshot_id", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("definition", JSONB, nullable=False),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("state_seq", sa.BigInteger, nullable=False),
        sa.Column("steps", JSONB, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index(
        "ix_deployments_project_workflow_name", "deployments", ["project_id", "workflow_name"]
    )
    op.create_index(
        "ix_deployments_project_workflow_id", "deployments", ["project_id", "workflow_id"]
    )
    op.create_index("ix_deployments_state", "deployments", ["state"])
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("workflow_id", sa.String(64), nullable=False),
        sa.Column("workflow_name", sa.String(200), nullable=False),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("ended_at", TZ, nullable=True),
        sa.Column("failed_step_id", sa.String(200), nullable=False),
        sa.Column("http_status", sa.Integer, nullable=False),
        sa.Column("results", JSONB, nullable=True),
    )
    op.create_index("ix_runs_project_created", "runs", ["project_id", "created_at", "id"])
    op.create_index(
        "ix_runs_project_workflow_created", "runs", ["project_id", "workflow_id", "created_at"]
    )
    op.create_index(
        "ix_runs_active",
        "runs",
        ["state"],
        postgresql_where=sa.text("state IN ('pending', 'running')"),
    )
    op.create_table(
        "executions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("step_id", sa.String(200), nullable=False),
        sa.Column("branch", JSONB, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("is_trigger", sa.Boolean, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("inputs", JSONB, nullable=False),
        sa.Column("site_id", sa.String(64), nullable=True),
        sa.Column("order_seq", sa.BigInteger, nullable=False),
        sa.Column("not_before", TZ, nullable=True),
        sa.Column("dispatched_at", TZ, nullable=True),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("ended_at", TZ, nullable=True),
        sa.Column("outputs", JSONB, nullable=True),
        sa.Column("outputs_list", JSONB, nullable=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("traceback", sa.Text, nullable=False),
        sa.Column("http_status", sa.Integer, nullable=False),
        sa.Column("log_count", sa.BigInteger, nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("progress_message", sa.Text, nullable=False),
        sa.Column("cpu_seconds", sa.Float, nullable=False),
        sa.Column("max_memory_bytes", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_executions_run_id", "executions", ["run_id"])
    op.create_table(
        "log_lines",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("step_id", sa.String(200), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("stream", sa.String(10), nullable=False),
        sa.Column("line", sa.Text, nullable=False),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_log_lines_run", "log_lines", ["run_id", "id"])
    op.create_index("ix_log_lines_step", "log_lines", ["deployment_id", "step_id", "id"])
    op.create_index(
        "ux_log_lines_execution_seq",
        "log_lines",
        ["execution_id", "seq"],
        unique=True,
        postgresql_where=sa.text("execution_id <> ''"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("exchange", sa.String(200), nullable=False),
        sa.Column("routing_key", sa.String(200), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("published_at", TZ, nullable=True),
    )
    op.create_table(
        "processed_messages",
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("handled_at", TZ, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "processed_messages",
        "outbox",
        "log_lines",
        "executions",
        "runs",
        "deployments",
        "sites",
    ):
        op.drop_table(table)
