"""ledger balance if free skips held rows: on PostgreSQL, `ledger_balance_if_free` (0031) also
takes the subject's `ledger_balances` row only if no other transaction holds it, and answers
NULL (the charge left to its settlement) if one does.

A grant keeps its subject's row from its INSERT to its COMMIT without the ledger lock (it reads
nothing, so it needs none). A charge written with an exit then waited for that grant in the
balances trigger (0030), and with it every exit of the group its statement was sent in
(grouped_sessions): the one wait a group could not skip.

The subject's first row is not covered: a grant inserting it is not yet visible, so the charge
reads a balance of 0 and waits for that grant in the trigger, as before.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07 03:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0036"
down_revision: str | None = "0035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCK = """
    IF NOT pg_try_advisory_xact_lock(
        hashtextextended(concat_ws(chr(31), 'ledger', p_tenant_id, p_subject_id), 0)) THEN
        RETURN NULL;
    END IF;"""
OF_SUBJECT = "b.tenant_id = p_tenant_id AND b.subject_id = p_subject_id"
SKIPPING_HELD_ROWS = f"""
CREATE OR REPLACE FUNCTION ledger_balance_if_free(p_tenant_id varchar, p_subject_id varchar)
RETURNS numeric
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    balance numeric;
BEGIN{LOCK}
    SELECT b.granted - b.consumed INTO balance FROM ledger_balances b
    WHERE {OF_SUBJECT} FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
        RETURN balance;
    END IF;
    -- Skipped (held by another transaction) or no ledger yet.
    PERFORM FROM ledger_balances b WHERE {OF_SUBJECT};
    RETURN CASE WHEN FOUND THEN NULL ELSE 0 END;
END
$$
"""
# 0031's.
WAITING_FOR_HELD_ROWS = f"""
CREATE OR REPLACE FUNCTION ledger_balance_if_free(p_tenant_id varchar, p_subject_id varchar)
RETURNS numeric
LANGUAGE plpgsql VOLATILE AS $$
BEGIN{LOCK}
    RETURN coalesce((SELECT b.granted - b.consumed FROM ledger_balances b
                     WHERE {OF_SUBJECT}), 0);
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SKIPPING_HELD_ROWS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(WAITING_FOR_HELD_ROWS)
