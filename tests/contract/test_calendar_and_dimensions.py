"""A tenant's calendar and dimensions on every store: days rolled up over local midnights (from
hours where they line up, from the raw data where they do not), weeks and months summed from
those days, sales grouped by local day, monthly quotas counted in local months, and rollups kept
apart by the declared dimensions that reports group and filter by."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from application.ports import Window
from application.reports.report_daily import ReportDailyQuery
from application.reports.report_usage import ReportUsageQuery
from application.rollups.roll_up_usage import RollUpUsageCommand
from application.tenants.update_settings import UpdateSettingsCommand
from domain.calendar import Calendar, Period
from domain.daily_summary import CurrencySales
from domain.error_reports import Severity
from domain.errors import InvalidInput
from domain.events import Event
from domain.funnels import Funnel, Stage, StageMatch
from domain.plans import MonthlyQuota, QuotaExceeded
from domain.sales import SalesGrouping, SaleStatus
from domain.session import Exit, SessionStatus
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, SHUT, add_tenant, stored_session, wired
from tests.contract.races import Proxy
from tests.contract.telemetry_builders import a_refund, a_sale, amounts, an_error
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

SEOUL = Calendar("Asia/Seoul")
KOLKATA = Calendar("Asia/Kolkata")
# 14:30 UTC on Tuesday 24 November 2026: 23:30 in Seoul, 20:00 in Kolkata.
EVENING = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def utc(minutes: float) -> datetime:
    return EVENING + timedelta(minutes=minutes)


async def visits(storage: Any, tenant: Any, *spans: tuple[float, float]) -> None:
    """Sessions of one webinar, each from its start to its end (minutes after EVENING)."""
    base = (EVENING - tenant.created_at).total_seconds() / 60
    for start, end in spans:
        session = await stored_session(storage, tenant, base + start, resource_id="w-1")
        await storage.sessions.close(tenant.id, session.id, Exit(utc(end)), frozenset(), NOW, SHUT)


async def roll_up(storage: Any, tenant: Any) -> None:
    """Rolled up by a run a day after EVENING's."""
    container = wired(storage, FakeClock(utc(24 * 60)))
    await container.jobs().roll_up_usage()(RollUpUsageCommand(tenant.name))


async def report(storage: Any, tenant: Any, bucket: str) -> list[Any]:
    report = wired(storage, FakeClock(utc(24 * 60))).use_cases().report_usage()
    calendar = tenant.settings.calendar
    november = calendar.start_of(Period.MONTH, EVENING)
    window = (november, calendar.shift(Period.MONTH, november, 2))
    return await report(ReportUsageQuery(tenant.id, bucket, *window, settings=tenant.settings))


async def test_seoul_days_run_from_its_midnight_and_sum_into_weeks_and_months(
    storage: Any,
) -> None:
    tenant = await add_tenant(storage, "seoul", time_zone="Asia/Seoul")
    # 23:00-23:20 and 23:40-00:20 in Seoul on the 24th, then 01:00-02:00 on the 25th.
    await visits(storage, tenant, (-30, -10), (10, 50), (90, 150))

    await roll_up(storage, tenant)
    days = await report(storage, tenant, "day")
    weeks = await report(storage, tenant, "week")
    months = await report(storage, tenant, "month")

    by_label = {d.bucket.label: d for d in days if d.activity.sessions_started}
    assert sorted(by_label) == ["2026-11-24", "2026-11-25"]
    first, second = by_label["2026-11-24"], by_label["2026-11-25"]
    assert first.bucket.start == datetime(2026, 11, 23, 15, tzinfo=UTC)
    assert (first.activity.sessions_started, first.activity.sessions_ended) == (2, 1)
    assert first.activity.active_seconds == (20 + 20) * 60  # the second visit until midnight
    assert (second.activity.sessions_started, second.activity.sessions_ended) == (1, 2)
    assert second.activity.active_seconds == (20 + 60) * 60
    assert [(w.bucket.label, w.activity.sessions_started) for w in weeks] == [("2026-W48", 3)]
    assert weeks[0].bucket.start == datetime(2026, 11, 22, 15, tzinfo=UTC)  # Monday in Seoul
    assert [(m.bucket.label, m.activity.active_seconds) for m in months] == [("2026-11", 7200.0)]


async def test_kolkata_days_start_at_half_past_and_are_counted_from_the_raw_data(
    storage: Any,
) -> None:
    tenant = await add_tenant(storage, "kolkata", time_zone="Asia/Kolkata")
    # 18:30 UTC is midnight in Kolkata: 23:50-00:10 there, then 00:20-00:40.
    await visits(storage, tenant, (230, 250), (260, 280))

    await roll_up(storage, tenant)
    days = await report(storage, tenant, "day")

    used = [(d.bucket.label, d.bucket.start) for d in days if d.activity.active_seconds]
    assert used == [
        ("2026-11-24", datetime(2026, 11, 23, 18, 30, tzinfo=UTC)),
        ("2026-11-25", datetime(2026, 11, 24, 18, 30, tzinfo=UTC)),
    ]
    first, second = (d.activity for d in days if d.activity.active_seconds)
    assert (first.sessions_started, first.sessions_ended, first.active_seconds) == (1, 0, 600.0)
    assert (second.sessions_started, second.sessions_ended, second.active_seconds) == (
        1,
        2,
        600.0 + 1200.0,
    )


async def test_a_new_time_zone_recuts_the_days_and_the_old_cut_is_not_reported(
    storage: Any,
) -> None:
    tenant = await add_tenant(storage, "moving")
    await visits(storage, tenant, (-30, -10), (10, 50))
    await roll_up(storage, tenant)
    in_utc = await report(storage, tenant, "day")
    container = wired(storage, FakeClock(utc(24 * 60)))
    change = UpdateSettingsCommand(tenant, {"time_zone": "Asia/Seoul"})
    moved = await container.use_cases().update_settings()(change)

    await roll_up(storage, moved)
    in_seoul = await report(storage, moved, "day")

    assert [d.bucket.label for d in in_utc if d.activity.sessions_started] == ["2026-11-24"]
    assert all(d.bucket.start.hour == 15 for d in in_seoul)
    started = [(d.bucket.label, d.activity.sessions_started) for d in in_seoul]
    assert [s for s in started if s[1]] == [("2026-11-24", 2)]


class MovesFirst(Proxy):
    """A port whose first call of `method` runs `move` before it (a change of settings landing
    at that point of a run)."""

    def __init__(self, inner: Any, method: str, move: Callable[[], Awaitable[None]]) -> None:
        super().__init__(inner)
        self._method, self._move, self._moved = method, move, False

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        if name != self._method:
            return found

        async def after_the_move(*args: Any) -> Any:
            if not self._moved:
                self._moved = True
                await self._move()
            return await found(*args)

        return after_the_move


async def moved_to_seoul_during_a_run(storage: Any, port: str, method: str) -> Tenant:
    """The tenant rolled up in UTC; then a run during which, at the port's method, its time
    zone becomes Seoul; then one run more. The tenant as moved."""
    tenant = await add_tenant(storage, "moving")
    await visits(storage, tenant, (-30, -10), (10, 50))
    await roll_up(storage, tenant)
    clock = FakeClock(utc(24 * 60))
    to_seoul = UpdateSettingsCommand(tenant, {"time_zone": "Asia/Seoul"})

    async def move() -> None:
        await wired(storage, clock).use_cases().update_settings()(to_seoul)

    moving = MovesFirst(getattr(storage, port), method, move)
    await wired(storage, clock, **{port: moving}).jobs().roll_up_usage()(RollUpUsageCommand())
    await roll_up(storage, tenant)
    moved: Tenant = await storage.tenants.get(tenant.id)
    assert moved.settings.time_zone == "Asia/Seoul"
    return moved


@pytest.mark.parametrize(
    ("port", "method"),
    [("rollup_leases", "acquire"), ("rollups", "replace"), ("rollup_leases", "release")],
    ids=["before its lease", "while it makes them", "as it ends"],
)
async def test_a_time_zone_changed_during_a_rollup_run_recuts_the_days(
    storage: Any, port: str, method: str
) -> None:
    """Wherever the change lands in a run, the run or the next one cuts the days by the new
    zone: each run records on the lease the zone it made the rollups by."""
    moved = await moved_to_seoul_during_a_run(storage, port, method)

    in_seoul = await report(storage, moved, "day")
    started = [(d.bucket.label, d.activity.sessions_started) for d in in_seoul]
    assert [s for s in started if s[1]] == [("2026-11-24", 2)]
    assert all(d.bucket.start.hour == 15 for d in in_seoul)


async def test_rollups_made_by_an_unrecorded_cut_are_made_again(storage: Any) -> None:
    """A lease from before runs recorded their cut: its next run makes everything again once,
    even hours past its resume point (here, a session stored there without a rewind)."""
    tenant = await add_tenant(storage, "upgraded")
    await visits(storage, tenant, (10, 50))
    await roll_up(storage, tenant)
    leases = storage.rollup_leases
    now = utc(24 * 60)
    assert await leases.acquire(tenant.id, "older version", now, now) is not None
    await leases.release(tenant.id, "older version", now, None)
    await visits(storage, tenant, (60, 70))

    await roll_up(storage, tenant)

    days = await report(storage, tenant, "day")
    assert sum(d.activity.sessions_started for d in days) == 2


async def test_sales_are_grouped_by_the_day_of_the_tenants_zone(storage: Any) -> None:
    tenant = await add_tenant(storage)
    session = await stored_session(storage, tenant)
    minutes = (EVENING - tenant.created_at).total_seconds() / 60
    await storage.sales.add(
        tenant.id, [a_sale("late", session.id, minutes + 40), a_sale("early", session.id, minutes)]
    )

    async def days(time_zone: str) -> list[str | None]:
        grouping = SalesGrouping.parse("day", time_zone)
        figures = await storage.sales.report(tenant.id, Window(), grouping, None)
        return sorted({f.group for f in figures})

    assert await days("UTC") == ["2026-11-24"]
    assert await days("Asia/Seoul") == ["2026-11-24", "2026-11-25"]  # 23:30 and 00:10 there


async def test_a_monthly_quota_counts_the_local_month(storage: Any) -> None:
    tenant = await add_tenant(storage)
    # 1 December 00:30 in Seoul is still November in UTC.
    december_in_seoul = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)
    november = SEOUL.bucket(Period.MONTH, december_in_seoul - timedelta(hours=1))
    december = SEOUL.bucket(Period.MONTH, december_in_seoul)
    registry = storage.resources

    await registry.register(
        tenant.id, "u1", "pdf-1", "practice", december_in_seoul - timedelta(hours=1), None
    )
    await registry.register(
        tenant.id, "u1", "pdf-2", "practice", december_in_seoul, MonthlyQuota(1, december)
    )

    assert await registry.count_in_month(tenant.id, "u1", november) == 1
    assert await registry.count_in_month(tenant.id, "u1", december) == 1
    with pytest.raises(QuotaExceeded):
        await registry.register(
            tenant.id, "u1", "pdf-3", "practice", december_in_seoul, MonthlyQuota(1, december)
        )


async def test_rollups_keep_declared_dimensions_apart_and_reports_group_and_filter_by_them(
    storage: Any,
) -> None:
    tenant = await add_tenant(storage, "kiosks", dimensions=("store_id", "country"))
    base = (EVENING - tenant.created_at).total_seconds() / 60
    stores = [
        {"store_id": "S1", "country": "KR", "operator": "x"},
        {"store_id": "S1", "country": "KR"},
        {"store_id": "S2", "country": "JP"},
        {"store_id": 7, "country": "JP"},  # not a string: its JSON text
        {},
    ]
    for n, attributes in enumerate(stores):
        session = await stored_session(
            storage, tenant, base + n, resource_id="k-1", kind="kiosk", attributes=attributes
        )
        await storage.events.append(
            tenant.id, [(0, Event(session.id, 1, "tap", utc(n + 0.5)))], NOW, OPEN
        )
        await storage.sessions.close(
            tenant.id, session.id, Exit(utc(n + 10)), frozenset(), NOW, SHUT
        )
    await roll_up(storage, tenant)
    usage = wired(storage, FakeClock(utc(24 * 60))).use_cases().report_usage()

    async def figures(**chosen: Any) -> list[tuple[str | None, int, int, float]]:
        query = ReportUsageQuery(
            tenant.id, "day", utc(-24 * 60), utc(24 * 60), settings=tenant.settings, **chosen
        )
        return [
            (f.group, f.activity.sessions_started, f.activity.events, f.activity.active_seconds)
            for f in await usage(query)
            if f.activity.sessions_started
        ]

    assert await figures(group_by="attributes.store_id") == [
        ("7", 1, 1, 600.0),
        ("S1", 2, 2, 1200.0),
        ("S2", 1, 1, 600.0),
        (None, 1, 1, 600.0),
    ]
    assert await figures(where={"country": "JP"}) == [(None, 2, 2, 1200.0)]
    assert await figures(where={"country": "KR"}, group_by="attributes.store_id") == [
        ("S1", 2, 2, 1200.0)
    ]
    hours = await storage.rollups.find(tenant.id, Period.HOUR, Window(utc(-60), utc(60)))
    kept = {a.dimensions for hour in hours for a in hour.activity}
    assert kept == {
        (("country", "KR"), ("store_id", "S1")),
        (("country", "JP"), ("store_id", "S2")),
        (("country", "JP"), ("store_id", "7")),
        (),
    }
    for undeclared in ({"where": {"operator": "x"}}, {"group_by": "attributes.operator"}):
        with pytest.raises(InvalidInput) as refused:
            await figures(**undeclared)
        assert "store_id, country" in refused.value.message


async def test_the_daily_summary_reads_each_stores_local_day_from_the_rollups(
    storage: Any,
) -> None:
    tenant = await add_tenant(storage, "booths", time_zone="Asia/Seoul", dimensions=("store_id",))
    base = (EVENING - tenant.created_at).total_seconds() / 60
    # Around midnight in Seoul (EVENING + 30 minutes): (store, booth, start, end, how it ended)
    visits = [
        ("S1", "booth-1", 70, 80, SessionStatus.COMPLETED),
        ("S1", "booth-1", 75, 105, SessionStatus.ABANDONED),
        ("S1", "booth-2", 80, 90, SessionStatus.COMPLETED),
        ("S2", "booth-3", 85, 100, SessionStatus.TIMED_OUT),
        ("S2", "booth-3", 0, 20, SessionStatus.COMPLETED),  # all of it the day before, in Seoul
        ("S2", "booth-3", 95, None, None),  # still there
    ]
    ids = []
    for store, booth, start, end, status in visits:
        session = await stored_session(
            storage, tenant, base + start, resource_id=booth, attributes={"store_id": store}
        )
        ids.append(session.id)
        if end is not None:
            exit = Exit(utc(end), status or SessionStatus.COMPLETED)
            await storage.sessions.close(tenant.id, session.id, exit, frozenset(), NOW, SHUT)
    # Errors and sales count on the day they happened, with their session's store.
    await storage.errors.add(
        tenant.id,
        [
            an_error("jam", base + 72, session_id=ids[0], severity=Severity.FATAL),
            an_error("retry", base + 73, session_id=ids[0]),
            an_error("yesterday's", base + 10, session_id=ids[4]),
            an_error("no session", base + 72),
        ],
    )
    sold = a_sale("s1", ids[0], base + 78, amounts=amounts("20000"))
    await storage.sales.add(
        tenant.id,
        [
            sold,
            a_sale("s2", ids[2], base + 88, amounts=amounts("15000")),
            a_refund("r1", sold, "5000", minutes=base + 100),
            a_sale("s3", ids[3], base + 90, status=SaleStatus.FAILED, amounts=amounts("9")),
            a_sale("s4", ids[3], base + 91, currency="USD", amounts=amounts("12.5")),
        ],
    )
    await roll_up(storage, tenant)
    report = wired(storage, FakeClock(utc(24 * 60))).use_cases().report_daily()

    async def day(group_by: str, date: str = "2026-11-25") -> list[tuple[Any, ...]]:
        query = ReportDailyQuery(tenant.id, date, group_by, settings=tenant.settings)
        summary = await report(query)
        assert summary.day.start == datetime(2026, 11, 24, 15, tzinfo=UTC)
        return [
            (
                g.group,
                g.sessions_started,
                (g.completed, g.abandoned, g.timed_out),
                g.completion_rate,
                g.average_duration_seconds,
            )
            for g in summary.groups
        ]

    stores = (
        await report(
            ReportDailyQuery(
                tenant.id, "2026-11-25", "attributes.store_id", settings=tenant.settings
            )
        )
    ).groups
    assert [(g.group, g.errors, g.fatal_errors, g.sales) for g in stores] == [
        ("S1", 2, 1, {"KRW": CurrencySales(2, Decimal("30000"))}),
        ("S2", 0, 0, {"USD": CurrencySales(1, Decimal("12.5"))}),
    ]

    assert await day("attributes.store_id") == [
        ("S1", 3, (2, 1, 0), 0.6667, 600 * 5 / 3),  # 10, 30 and 10 minutes
        ("S2", 2, (0, 0, 1), 0.0, 900.0),
    ]
    assert await day("resource_id") == [
        ("booth-1", 2, (1, 1, 0), 0.5, 1200.0),
        ("booth-2", 1, (1, 0, 0), 1.0, 600.0),
        ("booth-3", 2, (0, 0, 1), 0.0, 900.0),
    ]
    with pytest.raises(InvalidInput) as refused:
        await day("attributes.country")
    assert refused.value.field == "group_by"
    for bad in ("2026-13-01", "25/11/2026", "1999-12-31", "2026-11-25T00:00"):
        with pytest.raises(InvalidInput) as refused:
            await day("resource_id", bad)
        assert refused.value.field == "date"


async def test_the_daily_summary_gives_the_tenants_one_funnels_conversion_per_store(
    storage: Any,
) -> None:
    tenant = await add_tenant(storage, "photo", time_zone="Asia/Seoul", dimensions=("store_id",))
    base = (EVENING - tenant.created_at).total_seconds() / 60
    # After Seoul's midnight (EVENING + 30 minutes): who, store, the screens they reached.
    for n, (store, screens) in enumerate(
        [("S1", ["frame", "print"]), ("S1", ["frame"]), ("S2", ["frame", "print"])]
    ):
        session = await stored_session(
            storage,
            tenant,
            base + 40 + n,
            kind="kiosk",
            resource_id=f"booth-{store}",
            attributes={"store_id": store},
        )
        touched = [Event(session.id, i + 1, s, utc(41 + n + i / 10)) for i, s in enumerate(screens)]
        await storage.events.append(tenant.id, list(enumerate(touched)), NOW, OPEN)
    stages = tuple(Stage(s, StageMatch(type=s)) for s in ("frame", "print"))
    await storage.funnels.put(tenant.id, Funnel("photo", "kiosk", stages))
    await roll_up(storage, tenant)
    report = wired(storage, FakeClock(utc(24 * 60))).use_cases().report_daily()

    async def conversions(group_by: str) -> tuple[str | None, list[tuple[str | None, Any]]]:
        query = ReportDailyQuery(tenant.id, "2026-11-25", group_by, settings=tenant.settings)
        summary = await report(query)
        return summary.funnel, [(g.group, g.funnel_conversion) for g in summary.groups]

    assert await conversions("attributes.store_id") == ("photo", [("S1", 0.5), ("S2", 1.0)])
    assert await conversions("resource_id") == (
        "photo",
        [("booth-S1", 0.5), ("booth-S2", 1.0)],
    )
    await storage.funnels.put(tenant.id, Funnel("lobby", "kiosk", stages))  # which one? none
    assert await conversions("resource_id") == (None, [("booth-S1", None), ("booth-S2", None)])


async def test_after_a_change_of_zone_a_months_quota_counts_in_a_slot_of_its_own(
    storage: Any,
) -> None:
    tenant = await add_tenant(storage)
    # 02:00 UTC on 1 November: November in UTC, still October in New York.
    first = datetime(2026, 11, 1, 2, tzinfo=UTC)
    november_utc = Calendar().bucket(Period.MONTH, first)
    later = first + timedelta(days=10)
    november_there = Calendar("America/New_York").bucket(Period.MONTH, later)
    registry = storage.resources
    await registry.register(tenant.id, "mina", "pdf-1", "pdf", first, MonthlyQuota(1, november_utc))

    # MongoDB keyed its monthly slots by the month's label: both are "2026-11", and the second
    # registration collided with the first for ever.
    registered = await asyncio.wait_for(
        registry.register(
            tenant.id, "mina", "pdf-2", "pdf", later, MonthlyQuota(1, november_there)
        ),
        timeout=10,
    )

    assert registered
    assert await registry.count_in_month(tenant.id, "mina", november_there) == 1
