"""Move a sale's settlement along."""

from dataclasses import dataclass, replace

from application.telemetry.ports import SaleBook
from domain.errors import Contended, NotFound
from domain.sales import Sale, Settlement

# A move loses its race only to another move of the same sale; after a few, the state it finds
# is settled for good or the caller is fighting itself.
ATTEMPTS = 5


@dataclass(frozen=True)
class MoveSettlementCommand:
    tenant_id: str
    sale_id: str
    to: Settlement


class MoveSettlement:
    """A back end moves a sale's settlement as its payment processor reports: pending → settled
    (with the batch, the scheduled date, when it was processed) or disputed; disputed → settled or
    back to pending. Any other move is a `conflict` that says the current state; asking again
    for the state the sale is in, with nothing new, is a replay that changes nothing. Two moves
    at once: one wins, the other is judged against the state the winner left. Where it is
    decided: domain.sales.Settlement.move_to. A move that loses every race is a `conflict` too,
    to be sent again: it did not happen."""

    def __init__(self, sales: SaleBook) -> None:
        self._sales = sales

    async def __call__(self, command: MoveSettlementCommand) -> Sale:
        for _ in range(ATTEMPTS):
            sale = await self._sale(command)
            moved = sale.settlement.move_to(command.to)
            if moved is sale.settlement:
                return sale
            current = sale.settlement.state
            if await self._sales.move_settlement(command.tenant_id, sale.id, current, moved):
                return replace(sale, settlement=moved)
        raise Contended(
            f"sale {command.sale_id}'s settlement changed too often to move it; send the move again"
        )

    async def _sale(self, command: MoveSettlementCommand) -> Sale:
        found = await self._sales.get_many(command.tenant_id, [command.sale_id])
        if command.sale_id not in found:
            raise NotFound(f"no sale {command.sale_id} in this tenant")
        return found[command.sale_id]
