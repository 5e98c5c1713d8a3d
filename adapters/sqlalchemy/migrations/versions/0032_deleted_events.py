"""deleted events: each session keeps the sequence numbers of the events retention deleted, as
ranges ([[first, last], …]), so that its event gaps stay those that went missing: the numbers
deleted arrived. Empty on the sessions before (retention had already deleted some of their
events; those numbers show as gaps, as they did).

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-05 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deleted_events", sa.JSON(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("deleted_events")
