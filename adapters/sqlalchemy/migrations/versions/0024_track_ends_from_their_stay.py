"""track ends from their stay: a track still published when its stay ended takes the stay's end
as its own until LiveKit reports the track's end or the stay keeps another end (two enders of
the stay raced); the column says which ends are such.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("track_intervals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("end_from_stay", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("track_intervals", schema=None) as batch_op:
        batch_op.drop_column("end_from_stay")
