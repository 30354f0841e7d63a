"""Sites are created by admins and authenticated: each keeps the salted SHA-256 of its
credential (never the credential), when it was issued or revoked, who created the site and
when, whether it is archived, and the address its worker connected from.

Sites recorded before (created by their worker's first registration) get no credential: their
worker is refused until an admin issues one (`ryax site rotate NAME`).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "sites", sa.Column("worker_address", sa.String(200), nullable=False, server_default="")
    )
    op.add_column("sites", sa.Column("credential_salt", sa.String(64), nullable=True))
    op.add_column("sites", sa.Column("credential_hash", sa.String(128), nullable=True))
    op.add_column("sites", sa.Column("credential_issued_at", TZ, nullable=True))
    op.add_column("sites", sa.Column("credential_revoked_at", TZ, nullable=True))
    op.add_column("sites", sa.Column("created_at", TZ, nullable=True))
    op.add_column(
        "sites", sa.Column("created_by", sa.String(200), nullable=False, server_default="")
    )
    op.add_column("sites", sa.Column("archived_at", TZ, nullable=True))


def downgrade() -> None:
    for column in (
        "archived_at",
        "created_by",
        "created_at",
        "credential_revoked_at",
        "credential_issued_at",
        "credential_hash",
        "credential_salt",
        "worker_address",
    ):
        op.drop_column("sites", column)
