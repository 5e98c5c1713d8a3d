"""livekit accounts, webhook deliveries and track intervals

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "livekit_accounts",
        sa.Column("api_key", sa.String(length=200), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("api_secret", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("api_key"),
    )
    op.create_index("ix_livekit_accounts_tenant_id", "livekit_accounts", ["tenant_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    op.create_table(
        "track_intervals",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("track_sid", sa.String(length=200), nullable=False),
        sa.Column("meter", sa.String(length=64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unpublished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "session_id", "track_sid"),
    )


def downgrade() -> None:
    op.drop_table("track_intervals")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_livekit_accounts_tenant_id", table_name="livekit_accounts")
    op.drop_table("livekit_accounts")
