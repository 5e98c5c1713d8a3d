"""Sales a kiosk makes in a session, and how their money is settled.

A sale's amounts are exact decimals in one currency. A refund is a sale of its own (status
`refunded`) that names the sale it refunds. Settlement moves along a small state machine:
pending → settled or disputed; disputed → settled or back to pending; settled is final.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from functools import reduce

from domain.clock import EARLIEST, LATEST, as_utc
from domain.errors import Conflict, InvalidInput
from domain.money import EXACT, amount_text, check_amount, check_currency
from domain.reports import group_order
from domain.session import AttributeValue
from domain.text import check_attributes, check_text

MAX_ID_LENGTH = 200
MAX_ITEMS = 100
MAX_QUANTITY = 10**6


class PaymentMethod(StrEnum):
    CASH = "cash"
    CARD = "card"
    MOBILE = "mobile"
    OTHER = "other"


class SaleStatus(StrEnum):
    COMPLETED = "completed"
    REFUNDED = "refunded"  # a refund of the sale named by refund_of
    FAILED = "failed"


class SettlementState(StrEnum):
    PENDING = "pending"
    SETTLED = "settled"
    DISPUTED = "disputed"


ALLOWED_MOVES = frozenset(
    {
        (SettlementState.PENDING, SettlementState.SETTLED),
        (SettlementState.PENDING, SettlementState.DISPUTED),
        (SettlementState.DISPUTED, SettlementState.SETTLED),
        (SettlementState.DISPUTED, SettlementState.PENDING),
    }
)


class SettlementMoveRefused(Conflict):
    """A settlement may not move from its state to the one asked for."""

    def __init__(self, current: SettlementState, target: SettlementState) -> None:
        super().__init__(f"a sale's settlement cannot move from {current} to {target}")
        self.current = current


@dataclass(frozen=True)
class Settlement:
    state: SettlementState = SettlementState.PENDING
    scheduled_date: date | None = None
    processed_at: datetime | None = None
    batch_id: str | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "state", SettlementState(self.state))
        except ValueError:
            raise InvalidInput("state", "must be pending, settled or disputed") from None
        if self.processed_at is not None:
            object.__setattr__(self, "processed_at", as_utc("processed_at", self.processed_at))
        if self.scheduled_date is not None and not (
            EARLIEST.date() <= self.scheduled_date <= LATEST.date()
        ):
            raise InvalidInput("scheduled_date", "must lie between 2000-01-01 and 2999-12-31")
        if self.batch_id is not None:
            check_text("batch_id", self.batch_id, MAX_ID_LENGTH)

    def move_to(self, target: "Settlement") -> "Settlement":
        """The settlement after the move, or SettlementMoveRefused. Asking again for the state it
        is in with nothing new (a retried request) is no move and answers the settlement as is."""
        if target.state is self.state and self._particulars_kept_by(target):
            return self
        if (self.state, target.state) not in ALLOWED_MOVES:
            raise SettlementMoveRefused(self.state, target.state)
        return target

    def _particulars_kept_by(self, target: "Settlement") -> bool:
        return all(
            getattr(target, name) in (None, getattr(self, name))
            for name in ("scheduled_date", "processed_at", "batch_id")
        )


@dataclass(frozen=True)
class Amounts:
    gross: Decimal
    discount: Decimal
    tax: Decimal
    net: Decimal

    def __post_init__(self) -> None:
        for name in ("gross", "discount", "tax", "net"):
            object.__setattr__(self, name, check_amount(f"amounts.{name}", getattr(self, name)))
        # Prices may include tax or exclude it, so net is taken as sent within this bound.
        if self.net > self.gross + self.tax:
            raise InvalidInput("amounts.net", "must not be larger than gross + tax")


@dataclass(frozen=True)
class SaleItem:
    sku: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class Sale:
    id: str
    session_id: str
    device_id: str
    occurred_at: datetime
    currency: str
    amounts: Amounts
    payment_method: PaymentMethod
    status: SaleStatus = SaleStatus.COMPLETED
    items: tuple[SaleItem, ...] = ()
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    refund_of: str | None = None
    settlement: Settlement = field(default_factory=Settlement)

    def __post_init__(self) -> None:
        for name in ("id", "session_id", "device_id"):
            check_text(name, getattr(self, name), MAX_ID_LENGTH)
        object.__setattr__(self, "occurred_at", as_utc("occurred_at", self.occurred_at))
        check_currency("currency", self.currency)
        for name, kind in (("payment_method", PaymentMethod), ("status", SaleStatus)):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError:
                raise InvalidInput(name, f"must be one of {', '.join(kind)}") from None
        self._check_items()
        check_attributes("attributes", self.attributes)
        if (self.status is SaleStatus.REFUNDED) != (self.refund_of is not None):
            raise InvalidInput("refund_of", "names the refunded sale, on a refund and only there")
        if self.refund_of is not None:
            check_text("refund_of", self.refund_of, MAX_ID_LENGTH)

    def _check_items(self) -> None:
        if len(self.items) > MAX_ITEMS:
            raise InvalidInput("items", f"at most {MAX_ITEMS}")
        for i, item in enumerate(self.items):
            check_text(f"items[{i}].sku", item.sku, MAX_ID_LENGTH)
            if not 1 <= item.quantity <= MAX_QUANTITY:
                raise InvalidInput(f"items[{i}].quantity", f"must be 1-{MAX_QUANTITY}")
            price = check_amount(f"items[{i}].unit_price", item.unit_price)
            object.__setattr__(item, "unit_price", price)

    def same_as(self, other: "Sale") -> bool:
        """Whether `other` is this sale sent again (its settlement has moved on since, maybe)."""
        return self == Sale(**{**vars(other), "settlement": self.settlement})

    def check_refunds(self, refunded: "Sale") -> None:
        """A refund gives back money of one sale, in its currency, from its session's device."""
        if refunded.status is not SaleStatus.COMPLETED:
            raise InvalidInput(
                "refund_of", f"names a {refunded.status} sale; only completed ones are refunded"
            )
        if refunded.currency != self.currency:
            raise InvalidInput("currency", f"must be {refunded.currency}, the refunded sale's")


def over_refunds(
    sale: Sale, given_back: Iterable[Decimal], refunds: Sequence[Sale]
) -> list[InvalidInput | None]:
    """A sale's refunds give back at most its net. Of new refunds of `sale` (copies of one id
    included), in the order they are taken: why each may not be stored (None: it may), when it
    would give back more than is left of the sale (its net less `given_back`, the nets of its
    refunds stored). A refund taken leaves less for the next; a refused one leaves what it
    found, and a later copy of its id is judged on its own; a copy of an id taken before is not
    counted again (the store keeps one of them). (Checked as they are stored: SaleBook.add.)"""
    left = EXACT.subtract(sale.amounts.net, reduce(EXACT.add, given_back, Decimal(0)))
    taken: set[str] = set()
    refusals: list[InvalidInput | None] = []
    for refund in refunds:
        if refund.id not in taken and refund.amounts.net > left:
            shown = amount_text(max(left, Decimal(0)))  # an older store may have given back more
            refusals.append(
                InvalidInput(
                    "amounts.net",
                    f"is more than the {shown} {sale.currency} left to refund of sale {sale.id}",
                )
            )
        else:
            if refund.id not in taken:
                left = EXACT.subtract(left, refund.amounts.net)
            taken.add(refund.id)
            refusals.append(None)
    return refusals


class SalesGroupBy(StrEnum):
    DEVICE_ID = "device_id"
    DAY = "day"
    ATTRIBUTE = "attributes"  # attributes.<key>


@dataclass(frozen=True)
class SalesGrouping:
    by: SalesGroupBy
    attribute: str | None = None  # with ATTRIBUTE
    time_zone: str = "UTC"  # with DAY: the tenant's, whose calendar days group

    @classmethod
    def parse(cls, text: str, time_zone: str = "UTC") -> "SalesGrouping":
        if text in (SalesGroupBy.DEVICE_ID, SalesGroupBy.DAY):
            return cls(SalesGroupBy(text), time_zone=time_zone)
        prefix = "attributes."
        if text.startswith(prefix) and 1 <= len(text) - len(prefix) <= 64:
            return cls(SalesGroupBy.ATTRIBUTE, text[len(prefix) :])
        raise InvalidInput("group_by", "must be device_id, day or attributes.<key>")


@dataclass(frozen=True)
class SalesFilter:
    session_id: str | None = None
    device_id: str | None = None
    state: SettlementState | None = None


@dataclass(frozen=True)
class SalesTotal:
    """The sales of one group in one currency. Completed sales make up the count and amounts;
    refunds are their own total; failed sales move no money."""

    group: str | None
    currency: str
    count: int
    gross: Decimal
    discount: Decimal
    tax: Decimal
    net: Decimal
    refunded: Decimal
    by_method: dict[str, Decimal]  # net of completed sales per payment method
    by_state: dict[str, Decimal]  # net of completed sales per settlement state


@dataclass(frozen=True)
class SaleFigures:
    """What one sale adds to its group's total; the stores sum these by (group, currency,
    status, payment method, settlement state) and `sales_totals` folds them."""

    group: str | None
    currency: str
    status: SaleStatus
    payment_method: PaymentMethod
    state: SettlementState
    count: int
    gross: Decimal
    discount: Decimal
    tax: Decimal
    net: Decimal


def sales_totals(figures: list[SaleFigures]) -> list[SalesTotal]:
    """Totals per (group, currency), in that order; amounts of two currencies never meet."""
    totals: dict[tuple[str | None, str], SalesTotal] = {}
    zero = Decimal(0)
    for f in figures:
        key = (f.group, f.currency)
        t = totals.get(key) or SalesTotal(
            f.group, f.currency, 0, zero, zero, zero, zero, zero, {}, {}
        )
        if f.status is SaleStatus.REFUNDED:
            t = _with(t, refunded=EXACT.add(t.refunded, f.net))
        elif f.status is SaleStatus.COMPLETED:
            by_method = {
                **t.by_method,
                f.payment_method: EXACT.add(t.by_method.get(f.payment_method, zero), f.net),
            }
            by_state = {**t.by_state, f.state: EXACT.add(t.by_state.get(f.state, zero), f.net)}
            t = _with(
                t,
                count=t.count + f.count,
                gross=EXACT.add(t.gross, f.gross),
                discount=EXACT.add(t.discount, f.discount),
                tax=EXACT.add(t.tax, f.tax),
                net=EXACT.add(t.net, f.net),
                by_method=by_method,
                by_state=by_state,
            )
        totals[key] = t
    return [totals[k] for k in sorted(totals, key=lambda k: (*group_order(k[0]), k[1]))]


def _with(total: SalesTotal, **changes: object) -> SalesTotal:
    return SalesTotal(**{**vars(total), **changes})


def attribute_text(value: AttributeValue) -> str:
    """The group an attribute's value makes in a report: a string as it is, anything else as
    JSON spells it (true, 3, 1.5)."""
    return value if isinstance(value, str) else json.dumps(value)
