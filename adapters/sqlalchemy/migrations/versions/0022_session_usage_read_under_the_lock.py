"""session usage read under the lock: on PostgreSQL, a function that reads a session's meters
with a snapshot of its own. The statement that locks a batch's sessions calls it for each row it
locked: a statement that waited for a writer's lock sees the locked row as that writer left it,
but other tables only as of its own start, which would miss the usage the writer added; each
query in a VOLATILE PL/pgSQL function takes a new snapshot, after the lock. It saves the batch a
second statement (the meters read after the lock) and its round trip.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 14:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# [[meter, quantity_nanos, is_decimal], …] or NULL, as asyncpg_sessions reads a session's meters.
CREATE = """
CREATE FUNCTION session_usage_now(p_tenant_id varchar, p_session_id varchar) RETURNS json
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    usage json;
BEGIN
    SELECT json_agg(json_build_array(meter, quantity_nanos, is_decimal)) INTO usage
    FROM session_meters WHERE tenant_id = p_tenant_id AND session_id = p_session_id;
    RETURN usage;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION session_usage_now(varchar, varchar)")
