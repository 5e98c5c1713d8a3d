"""hourly and daily rollups, what rollups read sessions and tracks by, webhook ids by age

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def bucket() -> list[sa.Column[object]]:
    return [
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_index("ix_sessions_ended", "sessions", ["tenant_id", "ended_at"])
    op.create_index(
        "ix_track_intervals_unpublished", "track_intervals", ["tenant_id", "unpublished_at"]
    )
    op.create_index(
        "ix_webhook_deliveries_received", "webhook_deliveries", ["tenant_id", "received_at"]
    )
    op.create_table(
        "rollup_load",
        *bucket(),
        sa.Column("snapshots", sa.BigInteger(), nullable=False),
        sa.Column("traffic_bytes", sa.BigInteger(), nullable=False),
        sa.Column("cpu_percent_sum", sa.Float(), nullable=False),
        sa.Column("cpu_percent_max", sa.Float(), nullable=False),
        sa.Column("concurrent_users_sum", sa.BigInteger(), nullable=False),
        sa.Column("peak_concurrent_users", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "period", "bucket_start"),
    )
    op.create_table(
        "rollup_activity",
        *bucket(),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=200), nullable=False),
        sa.Column("sessions_started", sa.BigInteger(), nullable=False),
        sa.Column("sessions_ended", sa.BigInteger(), nullable=False),
        sa.Column("active_seconds", sa.Float(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("meters", sa.JSON(), nullable=False),
        sa.Column("track_seconds", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "period", "bucket_start", "kind", "resource_id"),
    )
    op.create_table(
        "rollup_leases",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("holder", sa.String(length=36), nullable=True),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resume_from", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id"),
    )


def downgrade() -> None:
    op.drop_table("rollup_leases")
    op.drop_table("rollup_activity")
    op.drop_table("rollup_load")
    op.drop_index("ix_webhook_deliveries_received", table_name="webhook_deliveries")
    op.drop_index("ix_track_intervals_unpublished", table_name="track_intervals")
    op.drop_index("ix_sessions_ended", table_name="sessions")
