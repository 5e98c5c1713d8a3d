from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Generic

from adapters.memory.store import MemoryStore
from application.pagination import Position
from application.ports import Window
from application.telemetry.ports import (
    SESSION_GONE,
    Added,
    ErrorLog,
    MetricLog,
    Record,
    SaleBook,
)
from domain.calendar import Calendar
from domain.error_reports import (
    PER_FINGERPRINT,
    ErrorFilter,
    ErrorGroup,
    ErrorGroupBy,
    ErrorGrouping,
    ErrorReport,
    in_report_order,
)
from domain.errors import InvalidInput
from domain.money import EXACT, sum_by_currency
from domain.performance import GroupBy, Metric, PerformanceRow, percentile_rows
from domain.sales import (
    PaymentMethod,
    Sale,
    SaleFigures,
    SalesFilter,
    SalesGroupBy,
    SalesGrouping,
    SaleStatus,
    Settlement,
    SettlementState,
    attribute_text,
    over_refunds,
)
from domain.session import Session


class _MemoryRecordLog(Generic[Record]):
    def __init__(
        self,
        records: dict[tuple[str, str], Record],
        sessions: dict[tuple[str, str], Session] | None = None,
    ) -> None:
        self._records: dict[tuple[str, str], Record] = records
        self._sessions = sessions  # given: a record's session must exist as it is stored

    async def add(self, tenant_id: str, records: Sequence[Record]) -> list[Added[Record]]:
        outcome: list[Added[Record]] = []
        for record in records:
            if self._gone(tenant_id, record.session_id):
                outcome.append(SESSION_GONE)
                continue
            stored = self._records.get((tenant_id, record.id))
            if stored is None and (refusal := self._refused(tenant_id, record)) is not None:
                outcome.append(refusal)
                continue
            if stored is None:
                self._records[(tenant_id, record.id)] = record
            outcome.append(stored)
        return outcome

    def _refused(self, tenant_id: str, record: Record) -> InvalidInput | None:
        """Why the new record may not be stored, if it may not."""
        return None

    def _gone(self, tenant_id: str, session_id: str | None) -> bool:
        return (
            self._sessions is not None
            and session_id is not None
            and (tenant_id, session_id) not in self._sessions
        )

    def _of(self, tenant_id: str) -> list[Record]:
        return [r for (tenant, _), r in self._records.items() if tenant == tenant_id]


def _newest_first(
    records: list[Record], at: Callable[[Record], object], limit: int, after: Position | None
) -> list[Record]:
    def key(r: Record) -> tuple[object, str]:
        return at(r), r.id

    found = [r for r in records if after is None or key(r) < (after.at, after.id)]
    return sorted(found, key=key, reverse=True)[:limit]


class MemoryErrorLog(_MemoryRecordLog[ErrorReport], ErrorLog):
    def __init__(self, store: MemoryStore) -> None:
        super().__init__(store.errors)

    async def find(
        self,
        tenant_id: str,
        where: ErrorFilter,
        window: Window,
        limit: int,
        after: Position | None = None,
    ) -> list[ErrorReport]:
        found = [e for e in self._of(tenant_id) if e.at in window and _matches(e, where)]
        return _newest_first(found, lambda e: e.at, limit, after)

    async def report(
        self,
        tenant_id: str,
        where: ErrorFilter,
        window: Window,
        grouping: ErrorGrouping = PER_FINGERPRINT,
    ) -> list[ErrorGroup]:
        by_day = grouping.by is ErrorGroupBy.DAY
        groups: dict[tuple[str | None, str], list[ErrorReport]] = defaultdict(list)
        for e in self._of(tenant_id):
            if e.at in window and _matches(e, where):
                day = _local_day(e.at, grouping.time_zone) if by_day else None
                groups[(day, e.fingerprint)].append(e)
        return in_report_order(_error_group(*key, errors) for key, errors in groups.items())


def _error_group(day: str | None, fingerprint: str, errors: list[ErrorReport]) -> ErrorGroup:
    latest = max(errors, key=lambda e: (e.at, e.id))
    versions: dict[str, int] = defaultdict(int)
    for e in errors:
        versions[e.app_version] += 1
    return ErrorGroup(
        fingerprint=fingerprint,
        type=latest.type,
        code=latest.code,
        sample_message=latest.message,
        count=len(errors),
        devices=len({e.device_id for e in errors}),
        sessions=len({e.session_id for e in errors if e.session_id}),
        first_seen=min(e.at for e in errors),
        last_seen=latest.at,
        app_versions=dict(versions),
        severity=max((e.severity for e in errors), key=lambda s: s.rank),
        sales_lost=sum(e.sale_lost for e in errors),
        estimated_loss=sum_by_currency(
            (loss.currency, loss.amount) for e in errors if (loss := e.loss)
        ),
        day=day,
    )


def _matches(e: ErrorReport, where: ErrorFilter) -> bool:
    return all(wanted is None or getattr(e, name) == wanted for name, wanted in vars(where).items())


class MemoryMetricLog(_MemoryRecordLog[Metric], MetricLog):
    def __init__(self, store: MemoryStore) -> None:
        super().__init__(store.metrics)

    async def report(
        self, tenant_id: str, type: str | None, window: Window, group_by: GroupBy
    ) -> list[PerformanceRow]:
        durations: dict[tuple[str, str], list[tuple[float, bool]]] = defaultdict(list)
        steps: dict[tuple[str, str, str], list[float]] = defaultdict(list)
        for m in self._of(tenant_id):
            if m.started_at in window and type in (None, m.type):
                group = getattr(m, group_by.value)
                durations[(m.type, group)].append((m.duration_ms, m.success))
                for step, ms in m.breakdown.items():
                    steps[(m.type, group, step)].append(ms)
        return percentile_rows(durations, steps)


class MemorySaleBook(_MemoryRecordLog[Sale], SaleBook):
    def __init__(self, store: MemoryStore) -> None:
        super().__init__(store.sales, store.sessions)

    def _refused(self, tenant_id: str, record: Sale) -> InvalidInput | None:
        refunded = record.refund_of and self._records.get((tenant_id, record.refund_of))
        if not refunded:
            return None
        given_back = [s.amounts.net for s in self._of(tenant_id) if s.refund_of == refunded.id]
        return over_refunds(refunded, given_back, [record])[0]

    async def get_many(self, tenant_id: str, sale_ids: Sequence[str]) -> dict[str, Sale]:
        return {i: s for i in sale_ids if (s := self._records.get((tenant_id, i)))}

    async def refunds_of(self, tenant_id: str, sale_ids: Sequence[str]) -> list[Sale]:
        refunded = set(sale_ids)
        return [s for s in self._of(tenant_id) if s.refund_of in refunded]

    async def move_settlement(
        self, tenant_id: str, sale_id: str, expected: SettlementState, settlement: Settlement
    ) -> bool:
        sale = self._records.get((tenant_id, sale_id))
        if sale is None or sale.settlement.state is not expected:
            return False
        self._records[(tenant_id, sale_id)] = replace(sale, settlement=settlement)
        return True

    async def find(
        self,
        tenant_id: str,
        where: SalesFilter,
        window: Window,
        limit: int,
        after: Position | None = None,
    ) -> list[Sale]:
        found = [
            s
            for s in self._of(tenant_id)
            if s.occurred_at in window
            and where.session_id in (None, s.session_id)
            and where.device_id in (None, s.device_id)
            and where.state in (None, s.settlement.state)
        ]
        return _newest_first(found, lambda s: s.occurred_at, limit, after)

    async def report(
        self, tenant_id: str, window: Window, grouping: SalesGrouping, currency: str | None
    ) -> list[SaleFigures]:
        sums: dict[
            tuple[str | None, str, SaleStatus, PaymentMethod, SettlementState], list[Decimal]
        ]
        sums = {}
        for s in self._of(tenant_id):
            if s.occurred_at not in window or currency not in (None, s.currency):
                continue
            key = (
                _group_of(s, grouping),
                s.currency,
                s.status,
                s.payment_method,
                s.settlement.state,
            )
            a = s.amounts
            total = sums.setdefault(key, [Decimal(0)] * 5)
            for i, value in enumerate((Decimal(1), a.gross, a.discount, a.tax, a.net)):
                total[i] = EXACT.add(total[i], value)
        return [SaleFigures(*key, int(figures[0]), *figures[1:]) for key, figures in sums.items()]


def _group_of(sale: Sale, grouping: SalesGrouping) -> str | None:
    if grouping.by is SalesGroupBy.DEVICE_ID:
        return sale.device_id
    if grouping.by is SalesGroupBy.DAY:
        return _local_day(sale.occurred_at, grouping.time_zone)
    value = sale.attributes.get(grouping.attribute or "")
    return None if value is None else attribute_text(value)


def _local_day(at: datetime, time_zone: str) -> str:
    """The calendar day (YYYY-MM-DD) that holds `at` in the time zone: the group of the sales
    and errors reports by day."""
    return Calendar(time_zone).date_of(at).isoformat()
