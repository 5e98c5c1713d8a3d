"""rollups by dimension: activity rows are kept per kind, resource and the values of the
tenant's declared dimensions, so reports group and filter by them

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = ["tenant_id", "period", "bucket_start", "kind", "resource_id"]
FIGURES = ["sessions_started", "sessions_ended", "active_seconds", "events", "meters"]
COLUMNS = ", ".join([*KEY, *FIGURES, "track_seconds"])


def _table(name: str, *extra: sa.Column[str], key: list[str]) -> None:
    op.create_table(
        name,
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=200), nullable=False),
        sa.Column("sessions_started", sa.BigInteger(), nullable=False),
        sa.Column("sessions_ended", sa.BigInteger(), nullable=False),
        sa.Column("active_seconds", sa.Float(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("meters", sa.JSON(), nullable=False),
        sa.Column("track_seconds", sa.JSON(), nullable=False),
        *extra,
        sa.PrimaryKeyConstraint(*key, name=f"pk_{name}"),
    )


def _swap(extra: list[sa.Column[str]], key: list[str], select: str) -> None:
    """The primary key changes: a new table takes the rows, then the old one's name (portable,
    where altering a primary key is not)."""
    _table("rollup_activity_next", *extra, key=key)
    op.execute(f"INSERT INTO rollup_activity_next SELECT {select} FROM rollup_activity")
    op.drop_table("rollup_activity")
    op.rename_table("rollup_activity_next", "rollup_activity")


def upgrade() -> None:
    dimensions = sa.Column("dimensions", sa.Text(), nullable=False, server_default="")
    _swap([dimensions], [*KEY, "dimensions"], f"{COLUMNS}, ''")


def downgrade() -> None:
    # Rows that differ by dimension only would collide: the next rollup run recomputes them.
    op.execute("DELETE FROM rollup_activity WHERE dimensions <> ''")
    _swap([], KEY, COLUMNS)
