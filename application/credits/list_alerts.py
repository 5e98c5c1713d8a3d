"""List the alerts for a tenant's admins."""

from dataclasses import dataclass

from application.credits.ports import CreditLedger
from application.pagination import Page, check_limit, page_of, position_of
from domain.credits import Alert


@dataclass(frozen=True)
class ListAlertsQuery:
    tenant_id: str
    limit: int | None = None
    cursor: str | None = None


class ListAlerts:
    """Alerts for a tenant's admins (e.g. a charge that took a balance below zero), newest
    first, one page at a time: up to `limit` of them (default 50, at most 500), and a cursor for
    the next page while there are more."""

    def __init__(self, ledger: CreditLedger) -> None:
        self._ledger = ledger

    async def __call__(self, query: ListAlertsQuery) -> Page[Alert]:
        size = check_limit(query.limit)
        before = position_of(query.cursor)
        rows = await self._ledger.alerts(query.tenant_id, size + 1, before)
        return page_of(rows, size, lambda a: [a.created_at.isoformat(), a.id])
