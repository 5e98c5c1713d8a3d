"""The ports of the telemetry area: what its use cases need from storage.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from collections.abc import Sequence
from typing import Protocol, TypeAlias, TypeVar, final

from application.pagination import Position
from application.ports import Window
from domain.error_reports import (
    PER_FINGERPRINT,
    ErrorFilter,
    ErrorGroup,
    ErrorGrouping,
    ErrorReport,
)
from domain.errors import InvalidInput
from domain.performance import GroupBy, Metric, PerformanceRow
from domain.sales import Sale, SaleFigures, SalesFilter, SalesGrouping, Settlement, SettlementState

Record = TypeVar("Record", bound=ErrorReport | Metric | Sale)


@final
class SessionGone:
    """In an add's outcome: the record names a session that no longer exists, and was not
    stored (SaleBook checks a sale's session as it stores it)."""


SESSION_GONE = SessionGone()


# What an add gives for each record: None (stored now), the record stored under its id before,
# or why it was not stored (SESSION_GONE, or a refusal: see SaleBook).
Added: TypeAlias = Record | SessionGone | InvalidInput | None


class RecordLog(Protocol[Record]):
    async def add(self, tenant_id: str, records: Sequence[Record]) -> list[Added[Record]]:
        """Store every record whose id is new in the tenant, in one bounded number of round
        trips. For each record, in order: None if this call stored it, else the record already
        stored under its id (earlier, by a concurrent call, or earlier in this batch) — the
        caller decides whether that is a replay or a conflict. Of concurrent adds of one id
        exactly one stores it. (SESSION_GONE and refusals: see SaleBook.)"""
        ...


class ErrorLog(RecordLog[ErrorReport], Protocol):
    async def find(
        self,
        tenant_id: str,
        where: ErrorFilter,
        window: Window,
        limit: int,
        after: Position | None = None,
    ) -> list[ErrorReport]:
        """Up to `limit` errors that happened in the window, newest first (at, then id,
        descending), after `after`."""
        ...

    async def report(
        self,
        tenant_id: str,
        where: ErrorFilter,
        window: Window,
        grouping: ErrorGrouping = PER_FINGERPRINT,
    ) -> list[ErrorGroup]:
        """The errors of the window grouped by fingerprint (see ErrorGroup) or, by day, by
        (calendar day of the grouping's time zone, fingerprint), each such group what the
        ungrouped report gives for that day's part of the window. Counted where they are
        stored; in domain.error_reports.in_report_order."""
        ...


class MetricLog(RecordLog[Metric], Protocol):
    async def report(
        self, tenant_id: str, type: str | None, window: Window, group_by: GroupBy
    ) -> list[PerformanceRow]:
        """Metrics that started in the window, per (type, group) in that order: count,
        successes, exact nearest-rank percentiles of the durations and of each breakdown step
        (domain.performance.rank), computed by the store without loading the window into
        this process's memory."""
        ...


class SaleBook(RecordLog[Sale], Protocol):
    """`add` stores a sale that names a session only if the session exists as it is stored
    (else SESSION_GONE in its place), and session retention never deletes a session a stored
    sale names: of a sale and retention of its session racing, either the sale is not stored
    or the session stays (API.md: sales are kept for good, and so are their sessions).

    `add` stores a new refund only within what is left of its sale, stored before this add
    (domain.sales.over_refunds: the batch's refunds of one sale taken in order, a later copy of
    an id refused for its amount judged on its own): one that would give back more is not
    stored, the refusal in its place. Of concurrent adds of refunds of one sale, those stored
    never give back more than its net. A refund sent again is a replay whatever is left."""

    async def get_many(self, tenant_id: str, sale_ids: Sequence[str]) -> dict[str, Sale]:
        """The tenant's sales of these ids that exist, by id."""
        ...

    async def refunds_of(self, tenant_id: str, sale_ids: Sequence[str]) -> list[Sale]:
        """The tenant's refunds of these sales."""
        ...

    async def move_settlement(
        self, tenant_id: str, sale_id: str, expected: SettlementState, settlement: Settlement
    ) -> bool:
        """Replace the sale's settlement if its state is still `expected`; False (changing
        nothing) when it is not, or there is no such sale. Of concurrent moves from one state
        exactly one succeeds."""
        ...

    async def find(
        self,
        tenant_id: str,
        where: SalesFilter,
        window: Window,
        limit: int,
        after: Position | None = None,
    ) -> list[Sale]:
        """Up to `limit` sales that occurred in the window, newest first (occurred_at, then id,
        descending), after `after`."""
        ...

    async def report(
        self, tenant_id: str, window: Window, grouping: SalesGrouping, currency: str | None
    ) -> list[SaleFigures]:
        """The sales that occurred in the window (in one currency if given), summed exactly by
        (group, currency, status, payment method, settlement state). The group of a sale is its
        device, its calendar day in the grouping's time zone (YYYY-MM-DD) or the text of its attribute (None without one)."""
        ...
