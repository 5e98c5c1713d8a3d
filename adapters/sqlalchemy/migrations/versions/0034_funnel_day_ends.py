"""funnel day ends: a funnel's day keeps where it ends in the time zone it was rolled up in, so
that after a change of zone a day of the old zone that starts at the same instant (29 March in
London and in UTC) is not read for the new zone's day. NULL on the days before: taken for the
day their start begins, as before.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-06 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("funnel_days", schema=None) as batch_op:
        batch_op.add_column(sa.Column("day_end", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("funnel_days", schema=None) as batch_op:
        batch_op.drop_column("day_end")
