"""List the alerts for a tenant's admins."""

from dataclasses import dataclass

from application.credits.ports import CreditLedger
from application.pagination import check_limit
from domain.credits import Alert


@dataclass(frozen=True)
class ListAlertsQuery:
    tenant_id: str
    limit: int | None = None


class ListAlerts:
    """Alerts for a tenant's admins (e.g. a charge that took a balance below zero), newest
    first: up to `limit` of them (default 50, at most 500)."""

    def __init__(self, ledger: CreditLedger) -> None:
        self._ledger = ledger

    async def __call__(self, query: ListAlertsQuery) -> list[Alert]:
        return await self._ledger.alerts(query.tenant_id, check_limit(query.limit))
