"""group sums: each bucket's activity summed per kind and group of every grouping the usage
report can ask for (whole, per resource, per dimension value), so that PostgreSQL adds up a
month per store from a row per store and day (buckets rolled up before are read as they were);
and each funnel day's rows per group (funnel days rolled up before are dropped: the next rollup
run counts them again, from the events, and reports read the events until then)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rollup_groups",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("grouping", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("grp", sa.Text(), nullable=True),
        sa.Column("sessions_started", sa.BigInteger(), nullable=False),
        sa.Column("sessions_ended", sa.BigInteger(), nullable=False),
        sa.Column("active_seconds", sa.Float(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("meters", sa.JSON(), nullable=False),
        sa.Column("track_seconds", sa.JSON(), nullable=False),
        sa.Column("ended_statuses", sa.JSON(), server_default="{}", nullable=False),
        sa.Column("ended_seconds", sa.Float(), server_default="0", nullable=False),
        sa.Column("errors", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("fatal_errors", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("sales", sa.JSON(), server_default="{}", nullable=False),
        sa.Column("sales_net", sa.JSON(), server_default="{}", nullable=False),
    )
    op.create_index(
        "ix_rollup_groups",
        "rollup_groups",
        ["tenant_id", "period", "grouping", "bucket_start"],
        unique=False,
    )
    op.create_table(
        "funnel_day_groups",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("funnel", sa.String(length=64), nullable=False),
        sa.Column("day_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("grouping", sa.String(length=80), nullable=False),
        sa.Column("grp", sa.Text(), nullable=True),
        sa.Column("tally", sa.JSON(), nullable=False),
    )
    op.create_index(
        "ix_funnel_day_groups",
        "funnel_day_groups",
        ["tenant_id", "funnel", "grouping", "day_start"],
        unique=False,
    )
    op.execute("DELETE FROM funnel_day_rows")
    op.execute("DELETE FROM funnel_days")


def downgrade() -> None:
    op.drop_index("ix_funnel_day_groups", table_name="funnel_day_groups")
    op.drop_table("funnel_day_groups")
    op.drop_index("ix_rollup_groups", table_name="rollup_groups")
    op.drop_table("rollup_groups")
