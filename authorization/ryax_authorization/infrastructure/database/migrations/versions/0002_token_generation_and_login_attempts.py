"""Access tokens revoked by a password change (users.token_generation); failed logins counted
by username whether or not a user has it (login_attempts), replacing users.failed_logins and
users.locked_until.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("token_generation", sa.Integer, nullable=False, server_default="0"),
    )
    op.drop_column("users", "failed_logins")
    op.drop_column("users", "locked_until")
    op.create_table(
        "login_attempts",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_login_attempts_last_failed_at", "login_attempts", ["last_failed_at"])


def downgrade() -> None:
    op.drop_table("login_attempts")
    op.add_column("users", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "users", sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0")
    )
    op.drop_column("users", "token_generation")
