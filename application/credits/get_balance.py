"""A subject's credits: granted, consumed, and the balance (always the sum of the ledger)."""

from application.credits.ports import CreditLedger
from domain.credits import Balance


class GetBalance:
    def __init__(self, ledger: CreditLedger) -> None:
        self._ledger = ledger

    async def __call__(self, tenant_id: str, subject_id: str) -> Balance:
        return await self._ledger.balance(tenant_id, subject_id)
