"""ledger lock waits five seconds: on PostgreSQL, a settlement's claim waits for its subject's
ledger lock 5 s at most (SETTLEMENT_WAIT_SECONDS), then fails with lock_not_available and
claims nothing. An erasure holds the lock while it moves the ledger (Erasure.with_ledgers_held):
an exit or the reaper does not wait for the whole erasure.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-04 03:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_balance_locked(p_tenant_id varchar, p_subject_id varchar)
RETURNS numeric
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    {wait}
    PERFORM pg_advisory_xact_lock(
        hashtextextended(concat_ws(chr(31), 'ledger', p_tenant_id, p_subject_id), 0));
    RETURN (SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e
            WHERE e.tenant_id = p_tenant_id AND e.subject_id = p_subject_id);
END
$$
"""
# For the rest of the claim's transaction: the claim is one autocommitted statement.
WAIT = "PERFORM set_config('lock_timeout', '5s', true);"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION.format(wait=WAIT))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION.format(wait=""))
