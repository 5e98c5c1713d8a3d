"""A subject's ledger entries, oldest first, one page at a time."""

from application.credits.ports import CreditLedger
from application.pagination import Page, check_limit, decode_cursor, page_of
from domain.credits import LedgerEntry


class ListLedger:
    def __init__(self, ledger: CreditLedger) -> None:
        self._ledger = ledger

    async def __call__(
        self, tenant_id: str, subject_id: str, limit: int | None = None, cursor: str | None = None
    ) -> Page[LedgerEntry]:
        size = check_limit(limit)
        after = None if cursor is None else str(decode_cursor(cursor, 1)[0])
        rows = await self._ledger.entries(tenant_id, subject_id, size + 1, after)
        return page_of(rows, size, lambda e: [e.id])
