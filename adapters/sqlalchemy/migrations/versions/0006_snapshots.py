"""resource snapshots

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cpu_percent", sa.Float(), nullable=False),
        sa.Column("memory_percent", sa.Float(), nullable=False),
        sa.Column("memory_mb", sa.Float(), nullable=False),
        sa.Column("traffic_bytes_total", sa.BigInteger(), nullable=False),
        sa.Column("concurrent_users", sa.Integer(), nullable=False),
        sa.Column("active_rooms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "source", "at"),
    )


def downgrade() -> None:
    op.drop_table("snapshots")
