"""rollups of ended sessions, errors and sales: what the daily summary reads (sessions ended by
status and their time, device errors, sales per currency)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 11:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rollup_activity", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ended_statuses", sa.JSON(), nullable=False, server_default="{}")
        )
        batch_op.add_column(
            sa.Column("ended_seconds", sa.Float(), nullable=False, server_default="0")
        )
        for counted in ("errors", "fatal_errors"):
            batch_op.add_column(
                sa.Column(counted, sa.BigInteger(), nullable=False, server_default="0")
            )
        for per_currency in ("sales", "sales_net"):
            batch_op.add_column(
                sa.Column(per_currency, sa.JSON(), nullable=False, server_default="{}")
            )


def downgrade() -> None:
    with op.batch_alter_table("rollup_activity", schema=None) as batch_op:
        for name in ("sales_net", "sales", "fatal_errors", "errors"):
            batch_op.drop_column(name)
        batch_op.drop_column("ended_seconds")
        batch_op.drop_column("ended_statuses")
