"""sales by refund_of: a refund is stored only within what is left of its sale, which its
sale's refunds stored say (SqlSaleBook._refused).

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-06 17:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0035"
down_revision: str | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_sales_refund_of", "sales", ["tenant_id", "refund_of"])


def downgrade() -> None:
    op.drop_index("ix_sales_refund_of", table_name="sales")
