"""A hostile review of 37526d2 (a tenant's export carries its hourly and daily usage rollups and
its funnels' days, format version 3), on every store and across stores.

Found, and fixed since (each test failed before its fix):

- Malformed rollup and funnel_day lines were imported without a word, to crash later (in a
  report, in the target's own storage layer, or partway through the import): negative counts,
  a bucket of period week, an hour that does not start on the hour, a meter that is text, a
  float, a boolean or larger than every store holds, a sale net that is text, NaN or has more
  digits than MongoDB's Decimal128 holds, two activity rows of one key (SQL: a duplicate
  primary key mid-import), a kind longer than the SQL column, a funnel tally with negative
  counts or rows of another stage count than the day's whole, a day's dimensions given as one
  string (read as a tuple of its letters). Now refused naming the line
  (application.transfer.record_checks; the format's decimals, unions and containers).
- A MongoDB funnel day stored before this change (no "dimensions" field) for a dimension none of
  its rows has was exported without that dimension: moved to SQLite or PostgreSQL, the day kept
  no groups for it, and the funnel report grouped by it lost the day's sessions. Such a day is
  now exported split by the tenant's declared dimensions too.
- A funnel day with no rows lost its dimensions through a SQL store (they were only the
  groupings of its funnel_day_groups). funnel_days keeps them now (migration 0033).
- An import the target's rollup job ran into kept the hours and funnel days that job made from
  the half-imported tenant (no events yet) instead of the file's, for good. An import now
  rewinds the tenant's rollups to where its data begins.

Held (regular tests): a move between two different stores (SQLite→memory, MongoDB→SQLite,
MongoDB→PostgreSQL, PostgreSQL→MongoDB) answers the usage report (hours and days, whole,
grouped by a dimension, filtered by a dimension, a resource or a kind; PostgreSQL from its
SQL-side group sums) and the funnel report (whole, filtered, grouped) exactly as the source did
for days whose events retention deleted, also after the target's own rollup job has run and
after a second import of the same file; an export taken while the source's rollup job rewrites
the buckets carries a day that is the sum of its hours (MongoDB too, for a tenant of a few
dozen buckets); the target's rollup job asked to reach back before the tenant's first day keeps
the imported buckets and funnel days of days whose events are gone; an old MongoDB funnel day
moved to memory or MongoDB, and one without rows moved anywhere, still report alike; other
malformed lines (a track time that
is text, a dimension pair of one value, a tally without statuses) are refused naming the line.
"""

import json
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from application.funnels.report_funnel import ReportFunnelQuery
from application.reports.report_usage import ReportUsageQuery
from application.retention.apply_retention import ApplyRetentionCommand
from application.rollups.roll_up_usage import RollUpUsageCommand
from application.transfer.export_tenant import ExportTenantQuery
from application.transfer.import_tenant import ImportTenantCommand
from domain.errors import InvalidInput
from domain.events import Event
from domain.funnels import FunnelFigures
from domain.rollups import UsageFigures
from domain.session import Exit, SessionStatus
from domain.snapshots import Snapshot
from domain.tenants import Tenant
from tests.conftest import Databases, open_storage
from tests.contract.builders import NOW, OPEN, SHUT, add_tenant, at, stored_session, wired
from tests.contract.races import PausesBeforeRestoring, Race, after
from tests.contract.test_archive import HOUR, PHOTO_DAY, export
from tests.contract.test_funnel_rollups import DAY, SETTINGS, close, kiosk_customers
from tests.contract.test_funnels import PHOTO
from tests.contract.test_transfer_and_retention_review import import_into, records
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

WINDOW = (DAY.start, DAY.start + timedelta(days=2))
ROLLED_UP_AT = at(2 * 24 * 60 + 120)  # every customer gone: the days are final
RETAINED_AT = at(3 * 24 * 60)
LATER = at(3 * 24 * 60 + 180)
# The source of a move into each store: another family every time.
SOURCE_OF = {
    "memory": "sqlite",
    "sqlite": "mongodb",
    "postgresql": "mongodb",
    "mongodb": "postgresql",
}


def family(url: str) -> str:
    return next(f for f in SOURCE_OF if url.startswith(f))


async def _fresh(databases: Databases, store: str) -> AsyncIterator[Any]:
    with databases.fresh(store) as url:
        opened = open_storage(url)
        try:
            yield opened
        finally:
            if url != "memory://":
                await opened.close()


@pytest.fixture
async def source(storage_url: str, databases: Databases) -> AsyncIterator[Any]:
    """A store of another family than the test's: where the tenant moves from."""
    async for opened in _fresh(databases, SOURCE_OF[family(storage_url)]):
        yield opened


@pytest.fixture
async def mongo_source(databases: Databases) -> AsyncIterator[Any]:
    """A MongoDB store to move from, whatever the test's store."""
    async for opened in _fresh(databases, "mongodb"):
        yield opened


async def roll_up(storage: Any, name: str, when: Any, since: Any = None) -> None:
    run = (
        await wired(storage, FakeClock(when))
        .jobs()
        .roll_up_usage()(RollUpUsageCommand(name, since))
    )
    assert not run.failures, run.failures


async def a_kiosk_tenant(storage: Any, retained: bool = True) -> Tenant:
    """test_funnel_rollups' customers of two stores (every one gone), one more without any
    dimension with decimal meters, servers' snapshots, the photo funnel; rolled up for good.
    `retained`: then retention deleted the events of those days (only the rollups tell them)."""
    added = await add_tenant(storage, "kiosks")
    tenant: Tenant = await storage.tenants.change_settings(added.id, lambda _: SETTINGS)
    ids = await kiosk_customers(storage, tenant)
    await close(storage, tenant, ids["eve"], at(53), SessionStatus.ABANDONED)
    walker = await stored_session(
        storage, tenant, 70, kind="kiosk", resource_id="kiosk-S9", subject_id=None, client_key="gus"
    )
    cost = "cost.usd"
    walked = [
        Event(walker.id, 1, "screen_enter", at(71), label="frame", meters={cost: Decimal("0.1")}),
        Event(walker.id, 2, "capture", at(72), meters={cost: Decimal("0.2")}),
    ]
    await storage.events.append(tenant.id, list(enumerate(walked)), NOW, OPEN)
    await storage.sessions.close(
        tenant.id, walker.id, Exit(at(75), usage={"prints": 1}), frozenset(), NOW, SHUT
    )
    await storage.snapshots.add(
        tenant.id,
        [Snapshot("lk-1", at(m), 30.5, 41.0, 2048.0, m * 1000, 12, 1) for m in (0, 5, 65)],
    )
    await storage.funnels.put(tenant.id, PHOTO)
    await roll_up(storage, tenant.name, ROLLED_UP_AT, since=DAY.start)
    if retained:
        tenant = await storage.tenants.change_settings(
            tenant.id, lambda s: replace(s, event_retention_days=1, late_data_window_seconds=60)
        )
        retention = wired(storage, FakeClock(RETAINED_AT)).jobs().apply_retention()
        deleted = await retention(ApplyRetentionCommand(tenant.name))
        assert deleted.events >= 10, deleted
    return tenant


USAGE_ASKED: list[dict[str, Any]] = [
    {},
    {"group_by": "attributes.store_id"},
    {"where": {"store_id": "S2"}},
    {"resource_id": "kiosk-S1"},
    {"kind": "kiosk", "group_by": "attributes.country"},
    {"kind": "kiosk", "where": {"country": "KR"}, "group_by": "attributes.store_id"},
]
FUNNEL_ASKED: list[dict[str, Any]] = [
    {},
    {"where": {"store_id": "S2"}},
    {"group_by": "attributes.store_id"},
    {"group_by": "attributes.country"},
]


async def usage_reports(storage: Any, tenant_id: str) -> list[list[UsageFigures]]:
    report = wired(storage, FakeClock(LATER)).use_cases().report_usage()
    return [
        await report(ReportUsageQuery(tenant_id, bucket, *WINDOW, settings=SETTINGS, **asked))
        for bucket in ("hour", "day")
        for asked in USAGE_ASKED
    ]


async def funnel_reports(storage: Any, tenant_id: str) -> list[FunnelFigures]:
    report = wired(storage, FakeClock(LATER)).use_cases().report_funnel()
    return [
        await report(ReportFunnelQuery(tenant_id, "photo", *WINDOW, settings=SETTINGS, **asked))
        for asked in FUNNEL_ASKED
    ]


async def reports(storage: Any, tenant_id: str) -> tuple[Any, Any]:
    return await usage_reports(storage, tenant_id), await funnel_reports(storage, tenant_id)


def something_to_lose(usage: list[list[UsageFigures]], funnels: list[FunnelFigures]) -> None:
    """The source's reports count events, meters, sales-free sessions and funnel progress: a
    move that lost any of them would show."""
    whole_by_hour = usage[0]
    assert sum(f.activity.events for f in whole_by_hour) >= 10
    assert sum(f.activity.meters.get("cost.usd", 0) for f in whole_by_hour) == Decimal("0.3")
    assert sum(f.load.snapshots for f in whole_by_hour) == 3
    assert funnels[0].sessions == 7 and funnels[0].stages[1].reached >= 3
    assert len(funnels[2].groups) == 3  # S1, S2, and the walker without a store


# --- Moves between two different stores ---------------------------------------------------


async def test_a_tenant_moved_to_another_store_reports_there_what_it_reported_here(
    storage: Any, source: Any
) -> None:
    """README: a day whose events or snapshots retention deleted before the move reports on the
    new store what it reported on the old one; its rollup job makes again only what retention
    has not thinned; an import run twice adds nothing. Usage by hour and day, whole, grouped
    and filtered by dimensions, by resource and kind (PostgreSQL: from rollup_groups, which the
    import writes), and the funnel, whole, filtered and grouped, from another family of store."""
    tenant = await a_kiosk_tenant(source)
    before = await reports(source, tenant.id)
    something_to_lose(*before)
    lines = await export(source, tenant.name)

    await import_into(storage, lines)
    moved = await reports(storage, tenant.id)
    await roll_up(storage, tenant.name, LATER)
    rolled_up_there = await reports(storage, tenant.id)
    again = await import_into(storage, lines)

    assert moved == before
    assert rolled_up_there == before
    assert sum(again.new.values()) == 0
    assert await reports(storage, tenant.id) == before


@pytest.mark.parametrize("rows", [True, False], ids=["with-rows", "rowless"])
async def test_an_old_mongodb_funnel_day_moved_keeps_its_sessions_in_a_grouped_report(
    storage: Any, mongo_source: Any, rows: bool
) -> None:
    """The commit: a funnel day's dimensions come, on MongoDB, from its "dimensions" field, and
    for documents stored before it from the keys their rows have. A tenant declared store_id
    before any session carried it: the day's rows have no store, its groups by store_id are
    one, "without the value". Moved to any store, the report grouped by store_id still counts
    the day's sessions there."""
    tenant = await add_tenant(mongo_source, "kiosks", dimensions=("store_id",))
    if rows:
        for n, minute in enumerate((10, 20)):
            kiosk = await stored_session(
                mongo_source, tenant, minute, kind="kiosk", subject_id=None, client_key=f"c{n}"
            )
            touched = [Event(kiosk.id, 1, "screen_enter", at(minute + 1), label="frame")]
            await mongo_source.events.append(tenant.id, list(enumerate(touched)), NOW, OPEN)
            await close(mongo_source, tenant, kiosk.id, at(minute + 3), SessionStatus.ABANDONED)
    await mongo_source.funnels.put(tenant.id, PHOTO)
    await roll_up(mongo_source, tenant.name, ROLLED_UP_AT, since=DAY.start)
    unset = await mongo_source.db["funnel_days"].update_many({}, {"$unset": {"dimensions": ""}})
    assert unset.modified_count == 3  # T0's day, the next, and the day of the run
    settings = tenant.settings
    query = ReportFunnelQuery(
        tenant.id, "photo", *WINDOW, settings=settings, group_by="attributes.store_id"
    )
    before = await wired(mongo_source, FakeClock(LATER)).use_cases().report_funnel()(query)
    assert [(g.group, g.figures.sessions) for g in before.groups] == ([(None, 2)] if rows else [])

    await import_into(storage, await export(mongo_source, tenant.name))

    after_move = await wired(storage, FakeClock(LATER)).use_cases().report_funnel()(query)
    assert after_move == before


async def test_a_funnel_day_without_rows_moves_as_it_was(storage: Any, memory: Any) -> None:
    """TenantArchive.restore: records are stored exactly as given. A day without sessions of the
    funnel's kind is rolled up with no rows, split by the tenant's dimensions; moved to this
    store and exported again, it is the record the file held."""
    tenant = await add_tenant(memory, "kiosks", dimensions=("store",))
    await memory.funnel_days.replace(tenant.id, "photo", replace(PHOTO_DAY, rows=[]))
    lines = await export(memory, tenant.name)
    assert records(lines, "funnel_day")[0]["day"]["dimensions"] == ["store"]

    await import_into(storage, lines)

    assert records(await export(storage, tenant.name), "funnel_day") == records(lines, "funnel_day")


# --- The target's rollup job and the import -----------------------------------------------


async def test_an_import_the_targets_rollup_job_runs_into_ends_with_the_files_figures(
    storage: Any, memory: Any, race: Race
) -> None:
    """README: the file carries the rollups, and the new store's rollup job makes again only
    what it can from what was moved. Forced: the server's scheduled rollup job rolls the new
    tenant up while the import has stored its sessions and not yet its events; the import then
    ends, and the job runs again later. The target reports what the source does."""
    tenant = await a_kiosk_tenant(memory, retained=False)
    before = await reports(memory, tenant.id)
    something_to_lose(*before)
    lines = await export(memory, tenant.name)
    reached, go = threading.Event(), threading.Event()

    async def imports(s: Any) -> Any:
        paused = PausesBeforeRestoring(s.archive, Event, reached, go)
        return (
            await wired(s, archive=paused).use_cases().import_tenant()(ImportTenantCommand(lines))
        )

    await race(imports, after(reached, go, lambda s: roll_up(s, tenant.name, ROLLED_UP_AT)))
    await roll_up(storage, tenant.name, ROLLED_UP_AT + timedelta(hours=3))

    after_both = await reports(storage, tenant.id)
    events = [sum(f.activity.events for f in report) for report in (before[0][0], after_both[0][0])]
    captured = [report[1][0].stages[1].reached for report in (before, after_both)]
    assert (events[1], captured[1]) == (events[0], captured[0]), (events, captured)
    assert after_both == before


async def test_the_targets_rollup_job_after_an_import_keeps_what_it_cannot_make_again(
    storage: Any, memory: Any
) -> None:
    """README: the new store's rollup job makes again, from the events and snapshots moved, only
    what retention has not thinned. Run asked to reach back to the tenant's first day
    (`rollup --since`), it leaves the imported buckets and funnel days of days whose events are
    gone as they were."""
    tenant = await a_kiosk_tenant(memory)
    before = await reports(memory, tenant.id)
    await import_into(storage, await export(memory, tenant.name))

    await roll_up(storage, tenant.name, LATER, since=DAY.start - timedelta(days=1))

    assert await reports(storage, tenant.id) == before


# --- An export while the rollup job runs on the source -------------------------------------


async def test_an_export_taken_while_the_rollup_job_rewrites_buckets_carries_consistent_ones(
    storage: Any, storage_url: str
) -> None:
    """README: an export reads one snapshot on the SQL stores. A late event comes in and the
    rollup job rewrites the day's hours and the day itself while the export is reading the
    buckets: every day exported is the sum of the hours exported with it."""
    tenant = await a_kiosk_tenant(storage, retained=False)
    sessions = records(await export(storage, tenant.name), "session")
    first = min(sessions, key=lambda s: s["started_at"]["$time"])
    server = storage if storage_url == "memory://" else open_storage(storage_url)
    exported = await wired(storage).use_cases().export_tenant()(ExportTenantQuery(tenant.name))
    lines: list[str] = []
    try:
        async for line in exported.lines:
            lines.append(line)
            if len(lines) > 1 and json.loads(line)["record"] == "rollup" and server is not None:
                late = Event(first["id"], 9, "tap", at(11))
                assert (await server.events.append(tenant.id, [(0, late)], NOW, OPEN)).inserted
                await roll_up(server, tenant.name, ROLLED_UP_AT, since=DAY.start)
                if server is not storage:
                    await server.close()
                server = None
    finally:
        if server is not None and server is not storage:
            await server.close()

    assert server is None  # the job ran while the export read the buckets
    rollups = records(lines, "rollup")
    days = [r for r in rollups if r["period"] == "day"]
    assert days
    for day in days:
        start = day["start"]["$time"]
        hours = [
            r
            for r in rollups
            if r["period"] == "hour" and start <= r["start"]["$time"] < _next_day(start)
        ]
        assert sum(a["events"] for r in hours for a in r["activity"]) == sum(
            a["events"] for a in day["activity"]
        ), start


def _next_day(start: str) -> str:
    return (datetime.fromisoformat(start) + timedelta(days=1)).isoformat()


# --- Malformed lines ------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _activity(mutate: Mutation) -> Mutation:
    return lambda record: mutate(record["activity"][0])


def _day(mutate: Mutation) -> Mutation:
    return lambda record: mutate(record["day"])


def _set(**values: Any) -> Mutation:
    return lambda found: found.update(values)


def _put(field: str, key: str, value: Any) -> Mutation:
    return lambda found: found[field].__setitem__(key, value)


def _twice(record: dict[str, Any]) -> None:
    record["activity"].append(dict(record["activity"][0]))


def _rows_of_three_stages(day: dict[str, Any]) -> None:
    day["rows"][0]["tally"] = {
        "reached": [1, 1, 1],
        "dropped": [0, 0, 1],
        "durations": [{}, {}],
        "statuses": {"abandoned": 1},
    }


def refused(what: str, record: str, mutate: Mutation) -> Any:
    return pytest.param(record, mutate, id=what.replace(" ", "-"))


MALFORMED = [
    refused("a negative session count", "rollup", _activity(_set(sessions_started=-2))),
    refused("a negative snapshot count", "rollup", lambda r: r["load"].update(snapshots=-1)),
    refused("period week", "rollup", _set(period="week")),
    refused(
        "an hour not on the hour",
        "rollup",
        _set(start={"$time": "2026-11-24T12:00:00.123000+00:00"}),
    ),
    refused("a meter that is text", "rollup", _activity(_put("meters", "answers", "lots"))),
    refused("a meter that is a float", "rollup", _activity(_put("meters", "answers", 1.5))),
    refused("a meter that is a boolean", "rollup", _activity(_put("meters", "answers", True))),
    refused("a meter of 2^64", "rollup", _activity(_put("meters", "answers", 2**64))),
    refused("a sale net that is text", "rollup", _activity(_put("sales_net", "KRW", "abc"))),
    refused(
        "a sale net that is NaN",
        "rollup",
        _activity(_put("sales_net", "KRW", {"$decimal": "NaN"})),
    ),
    refused(
        "a sale net of 40 digits",
        "rollup",
        _activity(_put("sales_net", "KRW", {"$decimal": "1." + "1" * 39})),
    ),
    refused("two activity rows of one key", "rollup", _twice),
    refused("a kind of 65 characters", "rollup", _activity(_set(kind="k" * 65))),
    refused("a track time that is text", "rollup", _activity(_put("track_seconds", "v", "x"))),
    refused("a dimension of one value", "rollup", _activity(_set(dimensions=[["store"]]))),
    refused(
        "a negative stage count",
        "funnel_day",
        _day(lambda d: d["whole"]["reached"].__setitem__(0, -3)),
    ),
    refused("rows of another stage count", "funnel_day", _day(_rows_of_three_stages)),
    refused("dimensions as one string", "funnel_day", _day(_set(dimensions="store"))),
    refused(
        "a tally without statuses",
        "funnel_day",
        _day(lambda d: d["whole"].pop("statuses")),
    ),
    refused(
        "a day ending before it starts",
        "funnel_day",
        _day(_set(end={"$time": "2000-01-01T00:00:00+00:00"})),
    ),
    refused("a day of no time", "funnel_day", _day(lambda d: d.update(end=d["start"]))),
    refused(
        "a day of a century", "funnel_day", _day(_set(end={"$time": "2126-01-01T00:00:00+00:00"}))
    ),
]


@pytest.mark.parametrize("record, mutate", MALFORMED)
async def test_a_malformed_rollup_or_funnel_day_line_is_refused_naming_it(
    memory: Any, record: str, mutate: Mutation
) -> None:
    """README: a file refused for a line stores nothing (every line is checked first); the
    brief: a malformed line is InvalidInput naming it, never a crash later (in a report, in a
    store's own column types, or partway through the import). What every store accepts
    (negative counts, buckets no report reads, numbers of types no sum takes) must be refused
    when the file is read: the check is the same for every store (ImportTenant reads the
    file whole before storing), so the memory store shows it."""
    tenant = await add_tenant(memory, "kiosks", dimensions=("store",))
    await memory.rollups.replace(tenant.id, HOUR)
    await memory.funnel_days.replace(tenant.id, "photo", PHOTO_DAY)
    lines = await export(memory, tenant.name)
    number = next(n for n, line in enumerate(lines) if json.loads(line)["record"] == record)
    broken = json.loads(lines[number])
    mutate(broken)
    lines[number] = json.dumps(broken)

    with pytest.raises(InvalidInput, match=f"line {number + 1}"):
        await import_into(open_storage("memory://"), lines)


@pytest.mark.parametrize(
    "mutate",
    [_activity(_put("meters", "answers", "lots")), _twice],
    ids=["a-text-meter", "two-rows-of-one-key"],
)
async def test_a_malformed_rollup_is_refused_or_reported_on_every_store(
    storage: Any, memory: Any, mutate: Mutation
) -> None:
    """The consequence, store by store: refused at import (InvalidInput), or else the usage
    report answers."""
    tenant = await add_tenant(memory, "kiosks", dimensions=("store",))
    await memory.rollups.replace(tenant.id, HOUR)
    lines = await export(memory, tenant.name)
    number = next(n for n, line in enumerate(lines) if json.loads(line)["record"] == "rollup")
    broken = json.loads(lines[number])
    mutate(broken)
    lines[number] = json.dumps(broken)

    try:
        await import_into(storage, lines)
    except InvalidInput:
        return
    report = wired(storage, FakeClock(LATER)).use_cases().report_usage()
    figures = await report(ReportUsageQuery(tenant.id, "hour", *WINDOW))
    assert sum(f.activity.sessions_started for f in figures) == 3
