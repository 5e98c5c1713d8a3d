"""charge corrections (a revision per session charge, one ledger entry per revision), the
LiveKit server URL that reconciliation asks, and rollup rewinds for late data

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sessions",
        sa.Column("charge_revision", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("ledger_entries", sa.Column("session_revision", sa.Integer()))
    op.execute("UPDATE ledger_entries SET session_revision = 0 WHERE session_id IS NOT NULL")
    op.drop_index("ux_ledger_session", table_name="ledger_entries")
    op.create_index(
        "ux_ledger_session_revision",
        "ledger_entries",
        ["tenant_id", "session_id", "session_revision"],
        unique=True,
    )
    op.add_column("livekit_accounts", sa.Column("url", sa.Text()))
    op.add_column("rollup_leases", sa.Column("rewind_to", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("rollup_leases", "rewind_to")
    op.drop_column("livekit_accounts", "url")
    op.drop_index("ux_ledger_session_revision", table_name="ledger_entries")
    op.create_index("ux_ledger_session", "ledger_entries", ["tenant_id", "session_id"], unique=True)
    op.drop_column("ledger_entries", "session_revision")
    op.drop_column("sessions", "charge_revision")
