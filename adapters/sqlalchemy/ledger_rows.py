"""Rows of the ledger and of its alerts, and what a settlement writes to them."""

from dataclasses import asdict
from datetime import datetime
from typing import Any

from adapters.sqlalchemy.tables import alerts, ledger_entries
from domain.charging import Settlement
from domain.credits import Alert, EntryKind, LedgerEntry
from domain.session import Session

# A record a settlement writes: the name of its table, and its row.
Record = tuple[str, dict[str, Any]]


def settlement_records(settlement: Settlement, session: Session, at: datetime) -> list[Record]:
    """The ledger entry and the alert `settlement` writes for `session` (as read), dated `at`."""
    records: list[Record] = []
    if (entry := settlement.ledger_entry(session, at)) is not None:
        records.append((ledger_entries.name, entry_to_row(entry)))
    if (alert := settlement.alert_record(session, at)) is not None:
        records.append((alerts.name, asdict(alert)))
    return records


def entry_to_row(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "tenant_id": entry.tenant_id,
        "subject_id": entry.subject_id,
        "amount": entry.amount,
        "kind": entry.kind.value,
        "reason": entry.reason,
        "session_id": entry.session_id,
        "idempotency_key": entry.idempotency_key,
        "expires_at": entry.expires_at,
        "created_at": entry.created_at,
        "session_revision": entry.session_revision,
    }


def entry_from_row(row: Any) -> LedgerEntry:
    return LedgerEntry(
        id=row.id,
        tenant_id=row.tenant_id,
        subject_id=row.subject_id,
        amount=row.amount,
        kind=EntryKind(row.kind),
        created_at=row.created_at,
        reason=row.reason,
        session_id=row.session_id,
        idempotency_key=row.idempotency_key,
        expires_at=row.expires_at,
        session_revision=row.session_revision,
    )


def alert_from_row(row: Any) -> Alert:
    return Alert(
        row.id, row.tenant_id, row.kind, row.subject_id, row.session_id, row.detail, row.created_at
    )
