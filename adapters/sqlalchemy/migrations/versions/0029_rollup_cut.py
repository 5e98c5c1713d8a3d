"""rollup cut: each tenant's rollup lease keeps the time zone and dimensions its rollups were
made by (TenantSettings.rollup_cut), so that a run finding them changed makes them again, however
the change was made and whatever failed after it. Null on the leases before: their next run
makes every hour and day still made from kept data again, once.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-05 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("rollup_leases", sa.Column("cut", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollup_leases", schema=None) as batch_op:
        batch_op.drop_column("cut")
