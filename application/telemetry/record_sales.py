"""Record the sales kiosks make."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from application.ports import Clock
from application.rollups.rollup_rewinds import RollupRewinds
from application.sessions.ports import SessionRepository
from application.telemetry.ports import SaleBook
from application.telemetry.recorded import Recorded, RecordOnce
from domain.errors import InvalidInput
from domain.sales import Sale
from domain.tenants import Access


@dataclass(frozen=True)
class RecordSalesCommand:
    tenant_id: str
    # In the client's order; one that could not be read is already the reason why.
    sales: Sequence[Sale | InvalidInput]
    access: Access = field(
        default_factory=Access
    )  # the caller's key: a scoped one sends only its devices' records


class RecordSales:
    """A kiosk records each sale of a session: exact decimal amounts (at most 9 places, not
    negative, net no larger than gross + tax) in an ISO 4217 currency, the payment method and
    status; it starts pending settlement. A refund is a sale of its own, status `refunded`,
    naming the sale it refunds in `refund_of`: that sale must exist (sent before, or earlier in
    the same batch), be no refund itself, and be in the same currency; and the nets of a sale's
    refunds add up to at most its net: one that would give back more than is left is refused on
    `amounts.net` (checked as it is stored, so refunds sent at once never pass it; a refund sent
    again is a replay whatever is left: SaleBook.add). As errors are, each sale
    is new, a replay (the same id and content, whatever its settlement has become since), a
    `conflict` (the id with other content) or a `validation_error` (naming the field; its
    session must exist in the tenant)."""

    def __init__(
        self, sales: SaleBook, sessions: SessionRepository, clock: Clock, rewinds: RollupRewinds
    ) -> None:
        self._sales = sales
        self._record = RecordOnce(sales, sessions, clock, _instant, Sale.same_as, rewinds)

    async def __call__(self, command: RecordSalesCommand) -> Recorded[Sale]:
        await self._record.check_batch(command.tenant_id, command.sales, "sales", command.access)
        sales = [s for s in command.sales if isinstance(s, Sale)]
        refunded = {s.refund_of for s in sales if s.refund_of}
        stored = await self._sales.get_many(command.tenant_id, sorted(refunded)) if refunded else {}
        for original in stored.values():  # a device's key refunds only its own sales
            command.access.check_scope(original.device_id)
        taken: dict[str, Sale] = {}  # the sales of the batch taken so far, the first of each id

        def refund_checked(sale: Sale) -> InvalidInput | None:
            """Judged in batch order, after the shared rules: the sale a refund names was stored
            before, or is one the batch takes before it (not one the rules refused)."""
            refusal = None
            if sale.refund_of is not None:
                original = stored.get(sale.refund_of) or taken.get(sale.refund_of)
                if original is None:
                    refusal = InvalidInput("refund_of", "no such sale in this tenant")
                else:
                    try:
                        sale.check_refunds(original)
                    except InvalidInput as error:
                        refusal = error
            if refusal is None:
                taken.setdefault(sale.id, sale)
            return refusal

        return await self._record(command.tenant_id, command.sales, refund_checked, _refunded)


def _refunded(sale: Sale) -> tuple[str, str] | None:
    return None if sale.refund_of is None else ("refund_of", sale.refund_of)


def _instant(sale: Sale) -> tuple[str, datetime]:
    return "occurred_at", sale.occurred_at
