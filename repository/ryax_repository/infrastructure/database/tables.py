"""Tables of the repository database. Migrations in migrations/ create them."""

from __future__ import annotations

import sqlalchemy as sa

from ryax_kit.messaging import outbox_table, processed_messages_table

metadata = sa.MetaData()

repositories = sa.Table(
    "repositories",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("project_id", sa.String(64), nullable=False, index=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("branch", sa.String(200), nullable=True),
    sa.Column("auth", sa.String(16), nullable=False),
    # Sealed (ryax_kit.crypto) ciphertext; never returned by the API, never logged.
    sa.Column("credentials", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_branch", sa.String(200), nullable=True),
    sa.Column("last_commit", sa.String(64), nullable=True),
    sa.Column("last_scan_id", sa.String(36), nullable=True),
    sa.Column("last_scanned_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("project_id", "name", name="uq_repositories_project_name"),
)

action_sources = sa.Table(
    "action_sources",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("project_id", sa.String(64), nullable=False, index=True),
    sa.Column(
        "repository_id",
        sa.String(36),
        sa.ForeignKey("repositories.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    sa.Column("upload_id", sa.String(36), nullable=True),
    sa.Column("origin_name", sa.String(200), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("commit", sa.String(64), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("action_id", sa.String(128), nullable=True),
    sa.Column("version", sa.String(128), nullable=True),
    sa.Column("kind", sa.String(16), nullable=True),
    sa.Column("metadata", sa.JSON, nullable=True),
    sa.Column("metadata_yaml", sa.Text, nullable=True),
    sa.Column("source_sha256", sa.String(64), nullable=True),
    sa.Column("source_size", sa.BigInteger, nullable=True),
    sa.Column("logo", sa.LargeBinary, nullable=True),
    sa.Column("logo_media_type", sa.String(32), nullable=False, server_default=""),
    sa.Column("errors", sa.JSON, nullable=False),
    sa.Column("warnings", sa.JSON, nullable=False),
    sa.Column("pending_change", sa.JSON, nullable=True),
    sa.Column("last_build_id", sa.String(36), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index(
        "uq_action_sources_version",
        "project_id",
        "action_id",
        "version",
        unique=True,
        postgresql_where=sa.text("state <> 'invalid'"),
    ),
)

builds = sa.Table(
    "builds",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("project_id", sa.String(64), nullable=False, index=True),
    sa.Column(
        "source_id",
        sa.String(36),
        sa.ForeignKey("action_sources.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("action_id", sa.String(128), nullable=False),
    sa.Column("version", sa.String(128), nullable=False),
    sa.Column("source_sha256", sa.String(64), nullable=False),
    sa.Column("source_key", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("artefact_key", sa.Text, nullable=True),
    sa.Column("artefact_sha256", sa.String(64), nullable=True),
    sa.Column("cached", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("duration_seconds", sa.Float, nullable=True),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("log", sa.Text, nullable=False, server_default=""),
)

scans = sa.Table(
    "scans",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("project_id", sa.String(64), nullable=False, index=True),
    sa.Column("repository_id", sa.String(36), nullable=True, index=True),
    sa.Column("origin_kind", sa.String(16), nullable=False),
    sa.Column("origin_name", sa.String(200), nullable=False),
    sa.Column("commit", sa.String(64), nullable=True),
    sa.Column("branch", sa.String(200), nullable=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("forced", sa.Boolean, nullable=False),
    sa.Column("report", sa.JSON, nullable=False),
)

outbox = outbox_table(metadata)
processed_messages = processed_messages_table(metadata)
