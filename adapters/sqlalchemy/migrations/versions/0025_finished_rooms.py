"""finished rooms: the rooms whose room_finished was handled, by room sid, so that a stay stored
after its room finished (its join delivered late, or handled while the room finished) ends with
it; forgotten with the handled webhook ids.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 22:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "finished_rooms",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("room_sid", sa.String(length=200), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "room_sid"),
    )
    op.create_index(
        "ix_finished_rooms_finished", "finished_rooms", ["tenant_id", "finished_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_finished_rooms_finished", table_name="finished_rooms")
    op.drop_table("finished_rooms")
