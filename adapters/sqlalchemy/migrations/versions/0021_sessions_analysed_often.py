"""sessions analysed often: PostgreSQL re-analyses the sessions table after 0.2 % of it changed,
not 10 %. A session is read by (tenant_id, id), and every other index of the table begins with
tenant_id too: for a tenant that the statistics do not know yet (new since the last ANALYZE),
the planner estimates none of its rows and reads through the smallest of those indexes on the
tenant alone, a scan of all the tenant's sessions per read, until the next ANALYZE. On ten
million sessions, the default waited for a million changes.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCALE_FACTOR = 0.002


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE sessions SET (autovacuum_analyze_scale_factor = {SCALE_FACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE sessions RESET (autovacuum_analyze_scale_factor)")
