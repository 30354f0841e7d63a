"""SQLAlchemy tables of the runner (its own database)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from ryax_kit.messaging import outbox_table, processed_messages_table

metadata = sa.MetaData()
TZ = sa.DateTime(timezone=True)
#: The runs retention may delete (RunState.is_terminal), as the partial index says it.
ENDED = "state IN ('completed', 'failed', 'cancelled')"

sites = sa.Table(
    "sites",
    metadata,
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
    # Sites created by admins, their credential (a salted SHA-256, never the credential), the
    # worker's address (0006).
    sa.Column("worker_address", sa.String(200), nullable=False, server_default=""),
    sa.Column("credential_salt", sa.String(64), nullable=True),
    sa.Column("credential_hash", sa.String(128), nullable=True),
    sa.Column("credential_issued_at", TZ, nullable=True),
    sa.Column("credential_revoked_at", TZ, nullable=True),
    sa.Column("created_at", TZ, nullable=True),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("archived_at", TZ, nullable=True),
)

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("workflow_id", sa.String(64), nullable=False),
    sa.Column("workflow_name", sa.String(200), nullable=False),
    sa.Column("snapshot_id", sa.String(64), nullable=False),
    sa.Column("requested_by", sa.String(200), nullable=False),
    # The definition, secrets encrypted (see serialization.SecretBox).
    sa.Column("definition", JSONB, nullable=False),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("state_seq", sa.BigInteger, nullable=False),
    sa.Column("steps", JSONB, nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    sa.Index("ix_deployments_project_workflow_name", "project_id", "workflow_name"),
    sa.Index("ix_deployments_project_workflow_id", "project_id", "workflow_id"),
    sa.Index("ix_deployments_state", "state"),
)

runs = sa.Table(
    "runs",
    metadata,
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
    sa.Index("ix_runs_project_created", "project_id", "created_at", "id"),
    sa.Index("ix_runs_project_workflow_created", "project_id", "workflow_id", "created_at"),
    sa.Index(
        "ix_runs_active", "state", postgresql_where=sa.text("state IN ('pending', 'running')")
    ),
    # Run retention (0011): the ended runs of a project, oldest first.
    sa.Index(
        "ix_runs_project_ended",
        "project_id",
        "ended_at",
        postgresql_where=sa.text(ENDED),
    ),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
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
    # Attempts before this one lost with their worker; the attempt this one replaces (0003).
    sa.Column("infra_retries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("retry_of", sa.String(64), nullable=True),
)

log_lines = sa.Table(
    "log_lines",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("execution_id", sa.String(64), nullable=False),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("step_id", sa.String(200), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("stream", sa.String(10), nullable=False),
    sa.Column("line", sa.Text, nullable=False),
    sa.Column("at", TZ, nullable=False),
    sa.Index("ix_log_lines_run", "run_id", "id"),
    sa.Index("ix_log_lines_step", "deployment_id", "step_id", "id"),
    sa.Index(
        "ux_log_lines_execution_seq",
        "execution_id",
        "seq",
        unique=True,
        postgresql_where=sa.text("execution_id <> ''"),
    ),
    # Retention of the lines of a deployment's own process (a trigger's), of no run (0011).
    sa.Index(
        "ix_log_lines_process_at",
        "deployment_id",
        "at",
        postgresql_where=sa.text("run_id = ''"),
    ),
)

#: Rows the recorder could not write (not for a transient cause), set aside so that every other
#: change is still recorded (0004). `payload` is the JSON text of the rows, anything unstorable
#: escaped; `python -m ryax_runner.parked` lists and retries them.
parked_records = sa.Table(
    "parked_records",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("first_failed_at", TZ, nullable=False),
    sa.Column("last_failed_at", TZ, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.UniqueConstraint("kind", "key", name="uq_parked_records_kind_key"),
)

#: The callbacks asked by HTTP endpoint calls (`callback_url`), POSTed once their run ended
#: (0005): `state` pending, delivered or abandoned; each attempt counted.
run_callbacks = sa.Table(
    "run_callbacks",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    # The project as the caller named it (id or name): file links in the payload use it.
    sa.Column("project", sa.String(200), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("next_attempt_at", TZ, nullable=False),
    sa.Column("last_error", sa.Text, nullable=False),
    sa.Column("delivered_at", TZ, nullable=True),
    sa.Index(
        "ix_run_callbacks_pending",
        "next_attempt_at",
        postgresql_where=sa.text("state = 'pending'"),
    ),
)

outbox = outbox_table(metadata)
processed_messages = processed_messages_table(metadata)

#: The built-in timer triggers' schedules (migration 0007; domain/timers.py).
timers = sa.Table(
    "timers",
    metadata,
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

#: A project's own run retention (0011; domain/retention.py): days, 0 = forever. A project
#: without a row has the runner's default (RYAX_RUNNER_RUN_RETENTION_DAYS).
project_settings = sa.Table(
    "project_settings",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("run_retention_days", sa.Integer, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)
