"""ledger balance under the subject's lock: on PostgreSQL, a function that takes the lock of a
subject's ledger (the transaction advisory lock settlement_batches.ledger_lock names) and then
sums the ledger with a snapshot of its own, taken after the lock (each query in a VOLATILE
PL/pgSQL function takes a new one). A settlement's claim calls it: the claim holds only if the
balance is still the one its decision read, and the lock, held until the claim commits, makes
the subject's claims take turns.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 20:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREATE = """
CREATE FUNCTION ledger_balance_locked(p_tenant_id varchar, p_subject_id varchar)
RETURNS numeric
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(
        hashtextextended(concat_ws(chr(31), 'ledger', p_tenant_id, p_subject_id), 0));
    RETURN (SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e
            WHERE e.tenant_id = p_tenant_id AND e.subject_id = p_subject_id);
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_balance_locked(varchar, varchar)")
