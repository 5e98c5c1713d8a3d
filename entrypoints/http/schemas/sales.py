"""The bodies of sales: a sale in, a settlement move in, sales and the sales report out."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import msgspec

from domain.money import amount_text
from domain.sales import (
    Amounts,
    PaymentMethod,
    Sale,
    SaleItem,
    SaleStatus,
    SalesTotal,
    Settlement,
    SettlementState,
)
from domain.session import AttributeValue
from entrypoints.http.schemas.common import Timestamp

ZERO = Decimal(0)


class AmountsBody(msgspec.Struct, kw_only=True):
    # Decimal strings or JSON numbers, kept exact.
    gross: Decimal
    discount: Decimal = ZERO
    tax: Decimal = ZERO
    net: Decimal


class SaleItemBody(msgspec.Struct, kw_only=True):
    sku: str
    quantity: int
    unit_price: Decimal


class SaleBody(msgspec.Struct, kw_only=True):
    id: str
    session_id: str
    device_id: str
    occurred_at: Timestamp
    currency: str
    amounts: AmountsBody
    payment_method: PaymentMethod
    status: SaleStatus = SaleStatus.COMPLETED
    refund_of: str | None = None  # on a refund: the sale it refunds
    items: list[SaleItemBody] = []
    # Any JSON here: domain.text.check_attributes judges each value and names its key.
    attributes: dict[str, Any] = {}


def a_sale(body: SaleBody, session_id: str) -> Sale:
    a = body.amounts
    return Sale(
        id=body.id,
        session_id=session_id,
        device_id=body.device_id,
        occurred_at=body.occurred_at,
        currency=body.currency,
        amounts=Amounts(a.gross, a.discount, a.tax, a.net),
        payment_method=body.payment_method,
        status=body.status,
        items=tuple(SaleItem(i.sku, i.quantity, i.unit_price) for i in body.items),
        attributes=body.attributes,
        refund_of=body.refund_of,
    )


class SettlementBody(msgspec.Struct, kw_only=True):
    state: SettlementState
    scheduled_date: date | None = None
    processed_at: Timestamp | None = None
    batch_id: str | None = None

    def settlement(self) -> Settlement:
        return Settlement(self.state, self.scheduled_date, self.processed_at, self.batch_id)


class AmountsOut(msgspec.Struct):
    gross: str
    discount: str
    tax: str
    net: str


class SaleItemOut(msgspec.Struct):
    sku: str
    quantity: int
    unit_price: str


class SettlementOut(msgspec.Struct):
    state: SettlementState
    scheduled_date: date | None
    processed_at: datetime | None
    batch_id: str | None


class SaleOut(msgspec.Struct):
    id: str
    session_id: str
    device_id: str
    occurred_at: datetime
    currency: str
    amounts: AmountsOut
    payment_method: PaymentMethod
    status: SaleStatus
    refund_of: str | None
    items: list[SaleItemOut]
    attributes: dict[str, AttributeValue]
    settlement: SettlementOut

    @classmethod
    def of(cls, s: Sale) -> "SaleOut":
        a, t = s.amounts, s.settlement
        return cls(
            s.id,
            s.session_id,
            s.device_id,
            s.occurred_at,
            s.currency,
            AmountsOut(*(amount_text(x) for x in (a.gross, a.discount, a.tax, a.net))),
            s.payment_method,
            s.status,
            s.refund_of,
            [SaleItemOut(i.sku, i.quantity, amount_text(i.unit_price)) for i in s.items],
            s.attributes,
            SettlementOut(t.state, t.scheduled_date, t.processed_at, t.batch_id),
        )


class SalesTotalOut(msgspec.Struct):
    group: str | None
    currency: str
    count: int
    gross: str
    discount: str
    tax: str
    net: str
    refunded: str
    by_method: dict[str, str]
    by_state: dict[str, str]

    @classmethod
    def of(cls, t: SalesTotal) -> "SalesTotalOut":
        def texts(by: dict[str, Decimal]) -> dict[str, str]:
            return {k: amount_text(v) for k, v in by.items()}

        gross, discount, tax, net, refunded = (
            amount_text(x) for x in (t.gross, t.discount, t.tax, t.net, t.refunded)
        )
        return cls(
            t.group, t.currency, t.count, gross, discount, tax, net, refunded,
            texts(t.by_method), texts(t.by_state),
        )  # fmt: skip
