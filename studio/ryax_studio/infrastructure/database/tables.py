"""Tables of the studio database. Migrations in migrations/ create them.

Workflow definitions and snapshots are stored as JSON documents (the `json` type, which keeps
key order, so an export is byte-for-byte stable); each is one aggregate, read and written whole.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from ryax_kit.messaging import outbox_table, processed_messages_table

#: The Alembic migrations of this database, applied at start.
MIGRATIONS = Path(__file__).parent / "migrations"

metadata = sa.MetaData()

actions = sa.Table(
    "actions",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("action_id", sa.String(128), primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("human_name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("categories", sa.JSON, nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("outputs", sa.JSON, nullable=False),
    sa.Column("resources", sa.JSON, nullable=False),
    sa.Column("artefact_key", sa.Text, nullable=False),
    sa.Column("artefact_sha256", sa.String(64), nullable=False),
    sa.Column("logo", sa.LargeBinary, nullable=True),
    sa.Column("logo_media_type", sa.String(64), nullable=False),
    sa.Column("repository_id", sa.String(64), nullable=False),
    sa.Column("source_commit", sa.String(64), nullable=False),
    sa.Column("build_id", sa.String(64), nullable=False),
    sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
)

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("project_id", "name", name="uq_workflows_project_name"),
)

secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    # Project variables (migration 0006): a secret's sealed value; NULL for the other kinds.
    sa.Column("ciphertext", sa.LargeBinary, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    #: secret, value or file; `value`: {"value": <JSON>} or {"file": {key, name, size, ...}}.
    sa.Column("kind", sa.String(16), nullable=False, server_default="secret"),
    sa.Column("value", sa.JSON, nullable=True),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("workflow_id", sa.String(36), nullable=False, index=True),
    sa.Column("workflow_name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("document", sa.JSON, nullable=False),
)

#: States in which a deployment is active: at most one per workflow (see the partial index).
ACTIVE_STATES_SQL = "('requested','deploying','waiting_for_site','deployed','undeploying')"

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("project_id", sa.String(64), nullable=False, index=True),
    sa.Column("workflow_id", sa.String(36), nullable=False, index=True),
    sa.Column("snapshot_id", sa.String(36), sa.ForeignKey("snapshots.id"), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("state_seq", sa.BigInteger, nullable=False),
    sa.Column("requested_by", sa.String(200), nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index(
        "uq_deployments_one_active_per_workflow",
        "workflow_id",
        unique=True,
        postgresql_where=sa.text(f"state IN {ACTIVE_STATES_SQL}"),
    ),
)

#: The values a deployment was requested with (its secrets and password-type inputs), sealed
#: and bound to the deployment (migration 0003): given to the runner on the internal route.
deployment_values = sa.Table(
    "deployment_values",
    metadata,
    sa.Column("deployment_id", sa.String(36), sa.ForeignKey("deployments.id"), primary_key=True),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(metadata)
processed_messages = processed_messages_table(metadata)
