"""The usage report's sums on every store: `RollupRepository.figures` gives what the domain makes
of the stored rollups (domain.rollups.figures_by_bucket), whether the store adds them up itself
(PostgreSQL, in SQL) or hands the rows to Python. The rollups are made by hand, with every figure
set, decimal and whole meters, refunds, and dimension values that SQL could misread."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from application.ports import Window
from domain.calendar import Calendar, Period
from domain.rollups import Activity, Rollup, ServerLoad, UsageFilter, figures_by_bucket
from domain.tenants import Tenant

pytestmark = pytest.mark.anyio

SEOUL = Calendar("Asia/Seoul")
FIRST_DAY = datetime(2026, 11, 1, 15, tzinfo=UTC)  # Seoul's 2 November, a Monday
AWKWARD = ['a "quoted" store', "50%_off", "ü/中", "s,1", "", "x\\y"]


def activity(n: int, day: int) -> Activity:
    store = AWKWARD[n % len(AWKWARD)]
    dimensions = (("region", f"r{n % 2}"), ("store_id", store)) if n % 5 else ()
    return Activity(
        "kiosk" if n % 3 else "webinar",
        f"res-{n % 4}",
        sessions_started=n + day,
        sessions_ended=n,
        active_seconds=n * 61.125 + day,
        events=3 * n,
        meters={"photos": n, "cost_usd": Decimal(f"{n}.{day}5")} if n % 2 else {"photos": 1},
        track_seconds={"video.seconds": n * 1.001} if n % 3 == 1 else {},
        dimensions=dimensions,
        ended_statuses={"completed": n, "abandoned": day} if n else {},
        ended_seconds=n * 1.5,
        errors=n % 4,
        fatal_errors=n % 2,
        sales={"KRW": n, "USD": 1} if n % 2 else {},
        sales_net={"KRW": Decimal(n * 1000), "USD": Decimal(f"-{day}.10")} if n % 2 else {},
    )


def rollups(period: Period, starts: list[datetime]) -> list[Rollup]:
    return [
        Rollup(
            period,
            start,
            sorted(
                (activity(n, d) for n in range(12)),
                key=lambda a: (a.kind, a.resource_id, a.dimensions),
            ),
            ServerLoad(d + 1, 10**9 * d, 12.5, 40.0, 3 * d, d),
        )
        for d, start in enumerate(starts)
    ]


FILTERS = {
    "everything": UsageFilter(),
    "by store": UsageFilter(group_by="store_id"),
    "by resource": UsageFilter(group_by_resource=True),
    "one kind, one region, by store": UsageFilter("kiosk", None, {"region": "r1"}, "store_id"),
    "a quoted store": UsageFilter(dimensions={"store_id": AWKWARD[0]}),
    "a store with LIKE's wildcards": UsageFilter(dimensions={"store_id": "50%_off"}),
    "one resource": UsageFilter(None, "res-1"),
    "a store no row has": UsageFilter(dimensions={"store_id": "50"}),
}


async def test_days_summed_into_the_report_are_what_the_domain_makes_of_them(
    storage: Any, tenant: Tenant
) -> None:
    days = [SEOUL.shift(Period.DAY, FIRST_DAY, n) for n in range(40)]
    # A day of the zone before, cut at UTC midnight: none of Seoul's days, left out.
    cut = datetime(2026, 11, 20, tzinfo=UTC)
    stored = rollups(Period.DAY, [*days[:19], cut, *days[19:]])
    for rollup in stored:
        await storage.rollups.replace(tenant.id, rollup)
    window = Window(days[3], days[-1])

    inside = [r for r in stored if days[3] <= r.start < days[-1]]

    for size in (Period.DAY, Period.WEEK, Period.MONTH):
        for name, chosen in FILTERS.items():
            found = await storage.rollups.figures(tenant.id, size, window, SEOUL, chosen)

            assert found == figures_by_bucket(inside, SEOUL, size, chosen), (size, name)
            some = any(f.activity.sessions_started for f in found)
            assert some is (name != "a store no row has"), (size, name)


async def test_hours_are_reported_as_stored(storage: Any, tenant: Tenant) -> None:
    hours = [FIRST_DAY + timedelta(hours=n) for n in range(30)]
    stored = rollups(Period.HOUR, hours)
    for rollup in stored:
        await storage.rollups.replace(tenant.id, rollup)
    chosen = UsageFilter(group_by="store_id")

    found = await storage.rollups.figures(
        tenant.id, Period.HOUR, Window(hours[2], hours[20]), SEOUL, chosen
    )

    assert found == figures_by_bucket(stored[2:20], SEOUL, Period.HOUR, chosen)
    assert len({f.bucket.start for f in found}) == 18


async def test_a_resource_erased_from_some_days_leaves_the_sums_of_what_is_left(
    storage: Any, tenant: Tenant
) -> None:
    days = [SEOUL.shift(Period.DAY, FIRST_DAY, n) for n in range(10)]
    stored = rollups(Period.DAY, days)
    # res-1 only on the last 4 days: the others keep whatever a store sums ahead.
    stored = [
        Rollup(r.period, r.start, [a for a in r.activity if a.resource_id != "res-1" or n >= 6])
        for n, r in enumerate(stored)
    ]
    for rollup in stored:
        await storage.rollups.replace(tenant.id, rollup)

    while await storage.erasure.delete_rollups(tenant.id, "res-1", 5):
        pass

    left = [
        Rollup(r.period, r.start, [a for a in r.activity if a.resource_id != "res-1"], r.load)
        for r in stored
    ]
    for size in (Period.DAY, Period.WEEK):
        for name, chosen in FILTERS.items():
            found = await storage.rollups.figures(
                tenant.id, size, Window(days[0], days[-1]), SEOUL, chosen
            )

            assert found == figures_by_bucket(left[:-1], SEOUL, size, chosen), (size, name)
