"""ledger holds: the subjects' ledgers an erasure holds on SQLite while it gives their sessions a
pseudonym and moves their ledger to it, so that no settlement decides from a half-moved ledger
meanwhile (PostgreSQL holds them with advisory locks, and leaves the table empty).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-04 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_holds",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=36), nullable=False),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "subject_id"),
    )


def downgrade() -> None:
    op.drop_table("ledger_holds")
