"""funnel day dimensions: a funnel's day keeps the dimensions its rows are split by, so that an
export carries them for a day without rows too. NULL on the days before: their groupings in
funnel_day_groups tell them (a day with rows has groups for each).

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-06 04:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("funnel_days", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dimensions", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("funnel_days", schema=None) as batch_op:
        batch_op.drop_column("dimensions")
