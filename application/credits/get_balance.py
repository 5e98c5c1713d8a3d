"""Read a subject's credits."""

from dataclasses import dataclass

from application.credits.ports import CreditLedger
from domain.credits import Balance
from domain.session import MAX_ID_LENGTH
from domain.text import check_text


@dataclass(frozen=True)
class GetBalanceQuery:
    tenant_id: str
    subject_id: str


class GetBalance:
    """A subject's credits: granted, consumed, and the balance, which is always the sum of its
    ledger entries (grants, charges and adjustments)."""

    def __init__(self, ledger: CreditLedger) -> None:
        self._ledger = ledger

    async def __call__(self, query: GetBalanceQuery) -> Balance:
        check_text("subject_id", query.subject_id, MAX_ID_LENGTH)  # as a grant's
        return await self._ledger.balance(query.tenant_id, query.subject_id)
