"""key names, expiry, revocation and last use

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 05:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("name", "expires_at", "revoked_at", "last_used_at")


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        for column in COLUMNS[1:]:
            table.add_column(sa.Column(column, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        for column in reversed(COLUMNS):
            table.drop_column(column)
