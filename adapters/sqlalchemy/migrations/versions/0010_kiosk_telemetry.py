"""kiosk telemetry: errors, performance metrics with their steps, and sales

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def record(id_column: str = "id") -> list[sa.Column[str]]:
    return [
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column(id_column, sa.String(length=200), nullable=False),
    ]


def amount(name: str, nullable: bool = False) -> list[sa.Column[int]]:
    return [
        sa.Column(f"{name}_units", sa.BigInteger(), nullable=nullable),
        sa.Column(f"{name}_nanos", sa.BigInteger(), nullable=nullable),
    ]


def upgrade() -> None:
    op.create_table(
        "errors",
        *record(),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device_id", sa.String(length=200), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=True),
        sa.Column("app_version", sa.String(length=200), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=200), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=200), nullable=False),
        sa.Column("sale_lost", sa.Boolean(), nullable=False),
        sa.Column("loss_currency", sa.String(length=3), nullable=True),
        *amount("loss", nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    op.create_index("ix_errors_at", "errors", ["tenant_id", "at", "id"])
    op.create_index("ix_errors_fingerprint", "errors", ["tenant_id", "fingerprint", "at"])
    op.create_table(
        "performance_metrics",
        *record(),
        sa.Column("device_id", sa.String(length=200), nullable=False),
        sa.Column("app_version", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    op.create_index(
        "ix_performance_metrics_started", "performance_metrics", ["tenant_id", "started_at"]
    )
    op.create_table(
        "performance_steps",
        *record("metric_id"),
        sa.Column("step", sa.String(length=200), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "metric_id", "step"),
    )
    op.create_table(
        "sales",
        *record(),
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("device_id", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payment_method", sa.String(length=16), nullable=False),
        sa.Column("refund_of", sa.String(length=200), nullable=True),
        *amount("gross"),
        *amount("discount"),
        *amount("tax"),
        *amount("net"),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("attribute_texts", sa.JSON(), nullable=False),
        sa.Column("settlement_state", sa.String(length=16), nullable=False),
        sa.Column("settlement_date", sa.Date(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("batch_id", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    op.create_index("ix_sales_occurred", "sales", ["tenant_id", "occurred_at", "id"])
    op.create_index("ix_sales_session", "sales", ["tenant_id", "session_id"])


def downgrade() -> None:
    op.drop_table("sales")
    op.drop_table("performance_steps")
    op.drop_table("performance_metrics")
    op.drop_table("errors")
