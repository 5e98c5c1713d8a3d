"""erasures under way: the pseudonym each subject's erasure gives it, kept until the erasure is
done, so that an erasure that failed midway (sessions under the pseudonym, the ledger not moved)
finishes under the same pseudonym when it is retried; until then the pseudonym's sessions are
not charged (application.credits.ports.UnfinishedErasures), found by the pseudonym's index,
and retention finishes it once it is old enough (ApplyRetention).

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-04 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erasures_under_way",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=200), nullable=False),
        sa.Column("pseudonym", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "subject_id"),
    )
    op.create_index(
        "ux_erasures_under_way_pseudonym",
        "erasures_under_way",
        ["tenant_id", "pseudonym"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("erasures_under_way")
