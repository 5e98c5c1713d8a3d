"""session usage read under the lock: on PostgreSQL, a function that reads sessions' meters
with a snapshot of its own. The statement that locks a batch's sessions calls it once it has
locked them all: a statement that waited for a writer's lock sees the locked rows as that writer
left them, but other tables only as of its own start, which would miss the usage the writer
added; each query in a VOLATILE PL/pgSQL function takes a new snapshot, after the locks. It saves
a second statement (the meters read after the lock) and its round trip.

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

# Each session's meters as [[meter, quantity_nanos, is_decimal], …], as asyncpg_sessions reads
# them; a session without meters has no row.
CREATE = """
CREATE FUNCTION session_usage_now(p_tenant_id varchar, p_session_ids varchar[])
RETURNS TABLE (id varchar, meters json)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    SELECT m.session_id::varchar,
           json_agg(json_build_array(m.meter, m.quantity_nanos, m.is_decimal))
    FROM session_meters m
    WHERE m.tenant_id = p_tenant_id AND m.session_id = ANY(p_session_ids)
    GROUP BY m.session_id;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION session_usage_now(varchar, varchar[])")
