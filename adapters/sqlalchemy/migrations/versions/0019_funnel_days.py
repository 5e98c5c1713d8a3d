"""funnel days: each funnel rolled up per day of the tenant's calendar, as a whole and per
resource and dimension values, so that a month's funnel report reads rollups, not events

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "funnel_days",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("funnel", sa.String(length=64), nullable=False),
        sa.Column("day_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("tally", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "funnel", "day_start"),
    )
    op.create_table(
        "funnel_day_rows",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("funnel", sa.String(length=64), nullable=False),
        sa.Column("day_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resource_id", sa.String(length=200), nullable=False),
        sa.Column("dimensions", sa.Text(), nullable=False),
        sa.Column("tally", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "funnel", "day_start", "resource_id", "dimensions"),
    )


def downgrade() -> None:
    op.drop_table("funnel_day_rows")
    op.drop_table("funnel_days")
