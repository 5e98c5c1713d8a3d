"""Alerts for a tenant's admins, newest first."""

from application.credits.ports import CreditLedger
from application.pagination import check_limit
from domain.credits import Alert


class ListAlerts:
    def __init__(self, ledger: CreditLedger) -> None:
        self._ledger = ledger

    async def __call__(self, tenant_id: str, limit: int | None = None) -> list[Alert]:
        return await self._ledger.alerts(tenant_id, check_limit(limit))
