"""Project variables: the secrets table also holds plain values and files, by `kind`
(`secret`: the sealed `ciphertext`, as before; `value`: a JSON value in `value`; `file`: a
static file or directory of the filestore described in `value`). Existing rows are secrets.

Revision ID: 0004
Revises: 0003 (re-chained after 0004/0005 when merged)
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "secrets", sa.Column("kind", sa.String(16), nullable=False, server_default="secret")
    )
    op.add_column("secrets", sa.Column("value", sa.JSON, nullable=True))
    op.alter_column("secrets", "ciphertext", existing_type=sa.LargeBinary, nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM secrets WHERE kind <> 'secret'")
    op.alter_column("secrets", "ciphertext", existing_type=sa.LargeBinary, nullable=False)
    op.drop_column("secrets", "value")
    op.drop_column("secrets", "kind")
