"""ledger balance if free: on PostgreSQL, `ledger_balance_if_free` takes a subject's ledger lock
only if it is free now, and then reads the subject's balance; NULL when another holds the lock.
An exit settles its session's first charge in its own write with it (SessionRepository.close
with a ChargeOnClose), and leaves the charge to the settlement that waits its turn
(ledger_balance_locked) when the lock is taken: by another settlement of the subject, or by an
erasure moving its ledger. Like ledger_balance_locked it is VOLATILE, so that its read takes a
snapshot after the lock: a statement's own snapshot may be older than the last settlement
before it.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-05 05:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION ledger_balance_if_free(p_tenant_id varchar, p_subject_id varchar)
RETURNS numeric
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(
        hashtextextended(concat_ws(chr(31), 'ledger', p_tenant_id, p_subject_id), 0)) THEN
        RETURN NULL;
    END IF;
    RETURN coalesce((SELECT b.granted - b.consumed FROM ledger_balances b
                     WHERE b.tenant_id = p_tenant_id AND b.subject_id = p_subject_id), 0);
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_balance_if_free(varchar, varchar)")
