"""Kiosk telemetry in SQL: errors, performance metrics and sales, one row per client id (the
primary key decides which of concurrent adds stores it), reported by GROUP BY where they are
stored."""

from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Generic

from sqlalchemy import (
    Column,
    ColumnElement,
    Select,
    String,
    Subquery,
    Table,
    and_,
    case,
    cast,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.record_batches import RecordBatch
from adapters.sqlalchemy.engine import insert, single_statement
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.keyset import past
from adapters.sqlalchemy.tables import (
    errors,
    performance_metrics,
    performance_steps,
    sales,
    sessions,
)
from adapters.sqlalchemy.telemetry_rows import (
    AMOUNTS,
    amount_of,
    amount_sums,
    error_of,
    error_row,
    metric_of,
    metric_row,
    sale_of,
    sale_row,
    settlement_columns,
    step_rows,
    summed,
)
from application.pagination import Position
from application.ports import Window
from application.telemetry.ports import (
    Added,
    ErrorLog,
    MetricLog,
    Record,
    SaleBook,
)
from domain.error_reports import (
    PER_FINGERPRINT,
    ErrorFilter,
    ErrorGroup,
    ErrorGroupBy,
    ErrorGrouping,
    ErrorReport,
    Severity,
    in_report_order,
)
from domain.errors import InvalidInput
from domain.performance import (
    PERCENTILES,
    STEP_PERCENTILES,
    GroupBy,
    Metric,
    PerformanceRow,
    StepTimes,
)
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
    over_refunds,
)

SEVERITY_RANK = {s.value: s.rank for s in Severity}


class _Dialect:
    """What SQLite and PostgreSQL spell differently in the reports."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sqlite = engine.dialect.name == "sqlite"

    def ranked(self, rows: Select[Any], partition: Sequence[Any], value: Any) -> Subquery:
        """`rows` as a subquery `percentile` can read: on SQLite, which has no percentile
        function, with each row's place in its partition (`rn`) and the partition's size (`n`)."""
        if self._sqlite:
            rows = rows.add_columns(
                func.row_number().over(partition_by=partition, order_by=value).label("rn"),
                func.count().over(partition_by=partition).label("n"),
            )
        return rows.subquery()

    def percentile(self, ranked: Subquery, percentile: int) -> ColumnElement[float]:
        """The nearest-rank percentile of `ranked.c.ms` per group (domain.performance.rank):
        PostgreSQL's percentile_disc is it; on SQLite, the value at rank ceil(p * n / 100)."""
        ms = ranked.c.ms
        if self._sqlite:
            rank = (percentile * ranked.c.n + 99) // 100
            return func.max(case((ranked.c.rn == rank, ms)))
        return func.percentile_disc(percentile / 100).within_group(ms)

    def local_day(self, at: Column[Any], time_zone: str) -> ColumnElement[str]:
        """The calendar day (YYYY-MM-DD) that holds `at` in the time zone."""
        if self._sqlite:  # SQLite knows no zones: the function the engine adds (engine.py)
            return func.local_date(at, time_zone, type_=String)
        return func.to_char(func.timezone(time_zone, at), "YYYY-MM-DD", type_=String)

    def attribute_text(self, texts: Column[Any], key: str) -> ColumnElement[str]:
        if self._sqlite:  # json_each finds any key, where a JSON path cannot spell some
            each = func.json_each(texts).table_valued("key", "value")
            return select(each.c.value).where(each.c.key == key).scalar_subquery()
        text: ColumnElement[str] = texts[key].as_string()
        return text


class _SqlRecordLog(Generic[Record]):
    """What the three logs share: adding by client id, and newest-first pages."""

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        to_row: Callable[[str, Record], dict[str, Any]],
        from_row: Callable[[Any], Record],
    ) -> None:
        self._engine = engine
        self._single = single_statement(engine)
        self._dialect = _Dialect(engine)
        self._table = table
        self._to_row = to_row
        self._from_row = from_row

    async def add(self, tenant_id: str, records: Sequence[Record]) -> list[Added[Record]]:
        if not records:
            return []
        table = self._table
        stmt = insert(self._engine, table).on_conflict_do_nothing().returning(table.c.id)
        async with self._engine.begin() as conn:
            batch = RecordBatch(records, await self._sessions_gone(conn, tenant_id, list(records)))
            refusals = await self._refused(conn, tenant_id, batch.there)
            # In id order, as every writer of these rows: two batches sharing ids in other
            # orders would otherwise each wait for a row the other inserted (PostgreSQL: a
            # deadlock).
            taken = sorted(batch.judged(refusals), key=lambda r: r.id)
            rows = [self._to_row(tenant_id, r) for r in taken]
            stored = set((await conn.execute(stmt, rows)).scalars()) if rows else set()
            others = [r.id for r in taken if r.id not in stored]
            before = {r.id: r for r in await self._get(conn, tenant_id, others)}
            await self._add_parts(conn, tenant_id, [r for r in taken if r.id in stored])
        return batch.outcome(stored, before)

    async def _sessions_gone(
        self, conn: AsyncConnection, tenant_id: str, records: list[Record]
    ) -> set[str]:
        """The sessions the records name that must exist as they are stored, and do not."""
        return set()

    async def _refused(
        self, conn: AsyncConnection, tenant_id: str, records: list[Record]
    ) -> list[InvalidInput | None]:
        """Why each of the records (in the batch's order) may not be stored, if it is new and
        may not (None: it may)."""
        return [None] * len(records)

    async def _add_parts(self, conn: AsyncConnection, tenant_id: str, stored: list[Record]) -> None:
        """Rows of the records this add stored that live in other tables."""

    async def _get(self, conn: AsyncConnection, tenant_id: str, ids: list[str]) -> list[Record]:
        if not ids:
            return []
        query = select(self._table).where(
            self._table.c.tenant_id == tenant_id, self._table.c.id.in_(ids)
        )
        return [self._from_row(row) for row in await conn.execute(query)]

    async def _newest_first(
        self,
        at: Column[Any],
        conditions: list[ColumnElement[bool]],
        window: Window,
        limit: int,
        after: Position | None,
    ) -> list[Record]:
        table = self._table
        conditions = [*conditions, *_within(at, window)]
        if after is not None:
            conditions.append(past(at, table.c.id, (after.at, after.id), descending=True))
        query = select(table).where(*conditions).order_by(at.desc(), table.c.id.desc()).limit(limit)
        async with self._single.connect() as conn:
            return [self._from_row(row) for row in await conn.execute(query)]


def _within(at: Column[Any], window: Window) -> list[ColumnElement[bool]]:
    conditions = []
    if window.start is not None:
        conditions.append(at >= window.start)
    if window.end is not None:
        conditions.append(at < window.end)
    return conditions


@raises_storage_errors
class SqlErrorLog(_SqlRecordLog[ErrorReport], ErrorLog):
    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, errors, error_row, error_of)

    async def find(
        self,
        tenant_id: str,
        where: ErrorFilter,
        window: Window,
        limit: int,
        after: Position | None = None,
    ) -> list[ErrorReport]:
        return await self._newest_first(
            errors.c.at, _matching(tenant_id, where), window, limit, after
        )

    async def report(
        self,
        tenant_id: str,
        where: ErrorFilter,
        window: Window,
        grouping: ErrorGrouping = PER_FINGERPRINT,
    ) -> list[ErrorGroup]:
        e = errors.c
        # Grouped outside the subquery that names the day: PostgreSQL would not see an
        # expression with a parameter (the time zone) in SELECT and GROUP BY as the same.
        chosen = (
            select(self._day(grouping).label("day"), *(e[name] for name in _REPORTED))
            .where(*_matching(tenant_id, where), *_within(e.at, window))
            .subquery()
        )
        r = chosen.c
        group = (r.day, r.fingerprint)
        counted = (
            select(
                *group,
                func.count().label("total"),
                func.count(r.device_id.distinct()).label("devices"),
                func.count(r.session_id.distinct()).label("sessions"),
                func.min(r.at).label("first_seen"),
                func.max(r.at).label("last_seen"),
                func.max(case(SEVERITY_RANK, value=r.severity)).label("worst"),
                func.count(case((r.sale_lost, 1))).label("sales_lost"),
            )
            .group_by(*group)
            .subquery()
        )
        newest = func.row_number().over(partition_by=group, order_by=(r.at.desc(), r.id.desc()))
        latest = select(*group, r.type, r.code, r.message, newest.label("n")).subquery()
        same_group = [latest.c.fingerprint == counted.c.fingerprint, latest.c.n == 1]
        if grouping.by is ErrorGroupBy.DAY:  # else every day is NULL, and NULL equals nothing
            same_group.append(latest.c.day == counted.c.day)
        groups = select(counted, latest.c.type, latest.c.code, latest.c.message).join_from(
            counted, latest, and_(*same_group)
        )
        versions = select(*group, r.app_version, func.count()).group_by(*group, r.app_version)
        losses = (
            select(*group, r.loss_currency, *amount_sums(r, "loss"))
            .where(r.loss_currency.is_not(None))
            .group_by(*group, r.loss_currency)
        )
        app_versions: dict[tuple[str | None, str], dict[str, int]] = defaultdict(dict)
        estimated_loss: dict[tuple[str | None, str], dict[str, Decimal]] = defaultdict(dict)
        async with self._single.connect() as conn:
            found = (await conn.execute(groups)).all()
            for day, fingerprint, version, n in await conn.execute(versions):
                app_versions[(day, fingerprint)][version] = n
            for day, fingerprint, currency, *sums in await conn.execute(losses):
                (estimated_loss[(day, fingerprint)][currency],) = summed(sums)
        return in_report_order(
            ErrorGroup(
                fingerprint=g.fingerprint,
                type=g.type,
                code=g.code,
                sample_message=g.message,
                count=g.total,
                devices=g.devices,
                sessions=g.sessions,
                first_seen=g.first_seen,
                last_seen=g.last_seen,
                app_versions=app_versions[(g.day, g.fingerprint)],
                severity=list(Severity)[g.worst],
                sales_lost=g.sales_lost,
                estimated_loss=estimated_loss[(g.day, g.fingerprint)],
                day=g.day,
            )
            for g in found
        )

    def _day(self, grouping: ErrorGrouping) -> ColumnElement[str]:
        if grouping.by is ErrorGroupBy.DAY:
            return self._dialect.local_day(errors.c.at, grouping.time_zone)
        return cast(null(), String)  # one day for all: a group per fingerprint


# The columns of an error the report reads.
_REPORTED = (
    "fingerprint", "at", "id", "device_id", "session_id", "app_version", "severity",
    "sale_lost", "loss_currency", "loss_units", "loss_nanos", "type", "code", "message",
)  # fmt: skip


def _matching(tenant_id: str, where: ErrorFilter) -> list[ColumnElement[bool]]:
    return [errors.c.tenant_id == tenant_id] + [
        errors.c[name] == wanted for name, wanted in vars(where).items() if wanted is not None
    ]


@raises_storage_errors
class SqlMetricLog(_SqlRecordLog[Metric], MetricLog):
    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, performance_metrics, metric_row, metric_of)

    async def _add_parts(self, conn: AsyncConnection, tenant_id: str, stored: list[Metric]) -> None:
        steps = [row for metric in stored for row in step_rows(tenant_id, metric)]
        if steps:
            await conn.execute(performance_steps.insert(), steps)

    async def report(
        self, tenant_id: str, type: str | None, window: Window, group_by: GroupBy
    ) -> list[PerformanceRow]:
        m, s = performance_metrics.c, performance_steps.c
        group = m[group_by.value]
        chosen = [m.tenant_id == tenant_id, *_within(m.started_at, window)]
        if type is not None:
            chosen.append(m.type == type)
        metrics = select(m.type, group.label("grp"), m.success, m.duration_ms.label("ms"))
        durations = self._dialect.ranked(metrics.where(*chosen), (m.type, group), m.duration_ms)
        steps = self._dialect.ranked(
            select(m.type, group.label("grp"), s.step, s.duration_ms.label("ms"))
            .join_from(
                performance_steps,
                performance_metrics,
                and_(m.tenant_id == s.tenant_id, m.id == s.metric_id),
            )
            .where(*chosen),
            (m.type, group, s.step),
            s.duration_ms,
        )
        per_metric = self._figures(
            durations,
            ("type", "grp"),
            PERCENTILES,
            func.count(),
            func.count(case((durations.c.success, 1))),
            func.max(durations.c.ms),
        )
        per_step = self._figures(steps, ("type", "grp", "step"), STEP_PERCENTILES)
        breakdowns: dict[tuple[str, str], dict[str, StepTimes]] = defaultdict(dict)
        async with self._single.connect() as conn:
            rows = (await conn.execute(per_metric)).all()
            for t, g, step, p50, p95 in await conn.execute(per_step):
                breakdowns[(t, g)][step] = StepTimes(p50, p95)
        return sorted(
            (
                PerformanceRow(t, g, n, ok, p50, p95, p99, ms, breakdowns[(t, g)])
                for t, g, n, ok, ms, p50, p95, p99 in rows
            ),
            key=lambda r: (r.type, r.group),
        )

    def _figures(
        self, ranked: Subquery, keys: Sequence[str], percentiles: Sequence[int], *figures: Any
    ) -> Select[Any]:
        """Per group of `keys`: the keys, the figures, then the percentiles of `ms`."""
        group = [ranked.c[k] for k in keys]
        return select(
            *group, *figures, *(self._dialect.percentile(ranked, p) for p in percentiles)
        ).group_by(*group)


@raises_storage_errors
class SqlSaleBook(_SqlRecordLog[Sale], SaleBook):
    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, sales, sale_row, sale_of)

    async def _sessions_gone(
        self, conn: AsyncConnection, tenant_id: str, records: list[Sale]
    ) -> set[str]:
        # Share-locked in id order until the sales are stored (PostgreSQL; SQLite's write lock
        # is the whole transaction's): a session retention is deleting is waited for, and is
        # gone; retention deleting one of them waits, then finds its sale (SqlErasure).
        named = sorted({r.session_id for r in records if r.session_id})
        if not named:
            return set()
        query = (
            select(sessions.c.id)
            .where(sessions.c.tenant_id == tenant_id, sessions.c.id.in_(named))
            .order_by(sessions.c.id)
            .with_for_update(read=True, key_share=True)
        )
        present = set((await conn.execute(query)).scalars())
        return {i for i in named if i not in present}

    async def _refused(
        self, conn: AsyncConnection, tenant_id: str, records: list[Sale]
    ) -> list[InvalidInput | None]:
        judged: list[InvalidInput | None] = [None] * len(records)
        refunds = [r for r in records if r.refund_of is not None]
        if not refunds:
            return judged
        s = sales.c
        # Locked in id order: refunds of one sale take turns from here to their commit
        # (PostgreSQL; SQLite's write lock is the whole transaction's).
        locked = (
            select(sales)
            .where(s.tenant_id == tenant_id, s.id.in_(sorted({r.refund_of for r in refunds})))
            .order_by(s.id)
            .with_for_update()
        )
        refunded = {sale.id: sale for sale in map(sale_of, await conn.execute(locked))}
        # What they gave back already, and which of the batch's refunds are stored (replays).
        ids = [r.id for r in refunds]
        stored = select(s.id, s.refund_of, s.net_units, s.net_nanos).where(
            s.tenant_id == tenant_id, or_(s.refund_of.in_(list(refunded)), s.id.in_(ids))
        )
        given_back: dict[str, list[Decimal]] = defaultdict(list)
        taken: set[str] = set()
        for row in await conn.execute(stored):
            taken.add(row.id)
            if row.refund_of in refunded:
                given_back[row.refund_of].append(amount_of(row.net_units, row.net_nanos))
        for sale_id, sale in refunded.items():
            new = [
                (n, r)
                for n, r in enumerate(records)
                if r.refund_of == sale_id and r.id not in taken
            ]
            refusals = over_refunds(sale, given_back[sale_id], [r for _, r in new])
            for (n, _), why in zip(new, refusals, strict=True):
                judged[n] = why
        return judged

    async def get_many(self, tenant_id: str, sale_ids: Sequence[str]) -> dict[str, Sale]:
        async with self._single.connect() as conn:
            return {s.id: s for s in await self._get(conn, tenant_id, list(sale_ids))}

    async def refunds_of(self, tenant_id: str, sale_ids: Sequence[str]) -> list[Sale]:
        query = select(sales).where(
            sales.c.tenant_id == tenant_id, sales.c.refund_of.in_(list(sale_ids))
        )
        async with self._single.connect() as conn:
            return [sale_of(row) for row in await conn.execute(query)]

    async def move_settlement(
        self, tenant_id: str, sale_id: str, expected: SettlementState, settlement: Settlement
    ) -> bool:
        stmt = (
            update(sales)
            .where(
                sales.c.tenant_id == tenant_id,
                sales.c.id == sale_id,
                sales.c.settlement_state == expected.value,
            )
            .values(settlement_columns(settlement))
        )
        async with self._single.begin() as conn:
            return bool((await conn.execute(stmt)).rowcount == 1)

    async def find(
        self,
        tenant_id: str,
        where: SalesFilter,
        window: Window,
        limit: int,
        after: Position | None = None,
    ) -> list[Sale]:
        s = sales.c
        conditions = [s.tenant_id == tenant_id]
        for column, wanted in (
            (s.session_id, where.session_id),
            (s.device_id, where.device_id),
            (s.settlement_state, where.state),
        ):
            if wanted is not None:
                conditions.append(column == wanted)
        return await self._newest_first(s.occurred_at, conditions, window, limit, after)

    async def report(
        self, tenant_id: str, window: Window, grouping: SalesGrouping, currency: str | None
    ) -> list[SaleFigures]:
        s = sales.c
        chosen = [s.tenant_id == tenant_id, *_within(s.occurred_at, window)]
        if currency is not None:
            chosen.append(s.currency == currency)
        keys = (s.currency, s.status, s.payment_method, s.settlement_state)
        amounts = [s[f"{name}_{part}"] for name in AMOUNTS for part in ("units", "nanos")]
        # Grouped outside the subquery that names the group: PostgreSQL would not see an
        # expression with a parameter (the attribute's key) in SELECT and GROUP BY as the same.
        rows = select(self._group(grouping).label("grp"), *keys, *amounts).where(*chosen).subquery()
        r = rows.c
        query = select(
            r.grp,
            *(r[k.name] for k in keys),
            func.count(),
            *(total for name in AMOUNTS for total in amount_sums(r, name)),
        ).group_by(r.grp, *(r[k.name] for k in keys))
        async with self._single.connect() as conn:
            found = (await conn.execute(query)).all()
        return [
            SaleFigures(
                group,
                currency,
                SaleStatus(status),
                PaymentMethod(method),
                SettlementState(state),
                count,
                *summed(sums),
            )
            for group, currency, status, method, state, count, *sums in found
        ]

    def _group(self, grouping: SalesGrouping) -> ColumnElement[str]:
        if grouping.by is SalesGroupBy.DEVICE_ID:
            return sales.c.device_id
        if grouping.by is SalesGroupBy.DAY:
            return self._dialect.local_day(sales.c.occurred_at, grouping.time_zone)
        return self._dialect.attribute_text(sales.c.attribute_texts, grouping.attribute or "")
