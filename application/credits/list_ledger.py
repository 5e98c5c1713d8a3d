"""List a subject's ledger entries."""

from dataclasses import dataclass

from application.credits.ports import CreditLedger
from application.pagination import Page, check_limit, page_of, position_of
from domain.credits import LedgerEntry


@dataclass(frozen=True)
class ListLedgerQuery:
    tenant_id: str
    subject_id: str
    limit: int | None = None
    cursor: str | None = None


class ListLedger:
    """A subject's ledger entries (grants, charges, adjustments), oldest first, one page at a
    time: up to `limit` entries (default 50, at most 500), and a cursor for the next page while
    there are more."""

    def __init__(self, ledger: CreditLedger) -> None:
        self._ledger = ledger

    async def __call__(self, query: ListLedgerQuery) -> Page[LedgerEntry]:
        size = check_limit(query.limit)
        after = position_of(query.cursor)
        rows = await self._ledger.entries(query.tenant_id, query.subject_id, size + 1, after)
        return page_of(rows, size, lambda e: [e.created_at.isoformat(), e.id])
