"""Reports: watch time with overlapping tabs counted once, activity per resource with its peak,
usage per account, and who is here now."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from adapters.memory.storage import MemoryStorage
from application.reports.report_active import ReportActiveQuery
from application.reports.report_resources import ReportResourcesQuery
from application.reports.report_usage_stats import ReportUsageStatsQuery
from application.reports.report_watch_time import ReportWatchTimeQuery
from application.sessions.record_exit import RecordExit, RecordExitCommand
from domain.errors import InvalidInput
from domain.events import Event
from domain.reports import peak_concurrency, unique_seconds
from domain.tenants import Tenant
from entrypoints.container.use_cases import UseCaseContainer
from tests.fakes import FakeClock
from tests.unit.conftest import Starter

pytestmark = pytest.mark.anyio

Visit = Callable[..., Awaitable[str]]

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def minute(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def test_overlapping_intervals_are_counted_once() -> None:
    intervals = [(minute(0), minute(10)), (minute(5), minute(20)), (minute(30), minute(40))]
    assert unique_seconds(intervals) == 30 * 60
    assert unique_seconds([]) == 0


def test_the_peak_is_the_most_sessions_open_at_once_and_a_handover_is_no_overlap() -> None:
    assert peak_concurrency([(minute(0), minute(10)), (minute(10), minute(20))]) == 1
    assert peak_concurrency([(minute(0), minute(10)), (minute(5), None), (minute(6), None)]) == 3
    assert peak_concurrency([]) == 0


@pytest.fixture
def visit(start: Starter, record_exit: RecordExit, tenant: Tenant) -> Visit:
    """A visit from minute `enter` to minute `leave` (None: still there)."""

    async def visit(enter: int, leave: int | None, **fields: Any) -> str:
        session = await start(started_at=minute(enter), **fields)
        if leave is not None:
            await record_exit(RecordExitCommand(tenant.id, session.id, at=minute(leave)))
        return session.id

    return visit


@pytest.fixture
def late_clock(clock: FakeClock) -> FakeClock:
    """Now is minute 60: every visit of these stories has started."""
    clock.advance((minute(60) - clock.now()).total_seconds())
    return clock


@pytest.mark.usefixtures("late_clock")
async def test_watch_time_per_viewer_counts_two_tabs_once(
    visit: Visit, use_cases: UseCaseContainer, tenant: Tenant
) -> None:
    await visit(0, 10)
    await visit(5, 20)
    await visit(30, 40)
    await visit(0, 30, subject_id="u2")
    await visit(0, None, subject_id="u3")  # still watching: not in the report yet
    await visit(0, 30, subject_id=None, client_key="tab")  # anonymous: nobody to report
    await visit(0, 30, resource_id="w2")

    report = await use_cases.report_watch_time()(ReportWatchTimeQuery(tenant.id, "w1"))

    assert [
        (w.subject_id, w.visit_count, w.total_seconds, w.avg_seconds, w.unique_seconds)
        for w in report
    ] == [("u1", 3, 2100.0, 700.0, 1800.0), ("u2", 1, 1800.0, 1800.0, 1800.0)]


@pytest.mark.usefixtures("late_clock")
async def test_watch_time_can_be_limited_to_a_window_of_start_times(
    visit: Visit, use_cases: UseCaseContainer, tenant: Tenant
) -> None:
    await visit(0, 10)
    await visit(30, 40)
    report_watch_time = use_cases.report_watch_time()
    report = await report_watch_time(ReportWatchTimeQuery(tenant.id, "w1", minute(20), minute(60)))
    assert [(w.visit_count, w.total_seconds) for w in report] == [(1, 600.0)]
    with pytest.raises(InvalidInput) as refused:
        await report_watch_time(ReportWatchTimeQuery(tenant.id, "w1", datetime(2026, 11, 24)))
    assert refused.value.field == "from"


@pytest.mark.usefixtures("late_clock")
async def test_resource_activity_counts_every_start_and_the_durations_of_exits(
    visit: Visit, use_cases: UseCaseContainer, tenant: Tenant
) -> None:
    await visit(0, 10)
    await visit(5, None, subject_id="u2")
    await visit(8, 20, subject_id="u2")

    (activity,) = await use_cases.report_resources()(
        ReportResourcesQuery(tenant.id, kind="webinar")
    )

    assert (activity.resource_id, activity.total_sessions, activity.unique_subjects) == ("w1", 3, 2)
    assert (activity.total_duration_seconds, activity.avg_duration_seconds) == (1320.0, 660.0)
    assert (activity.active_now, activity.peak_concurrency) == (1, 3)
    report_active = use_cases.report_active()
    assert (await report_active(ReportActiveQuery(tenant.id, "w1"))).active == 1
    assert (await report_active(ReportActiveQuery(tenant.id, "w2"))).active == 0


@pytest.mark.usefixtures("late_clock")
async def test_usage_stats_add_meters_exactly_over_an_accounts_sessions(
    visit: Visit, storage: MemoryStorage, use_cases: UseCaseContainer, tenant: Tenant
) -> None:
    first = await visit(0, None)
    await storage.events.append(
        tenant.id,
        [(0, Event(first, 1, "analysis", minute(1), meters={"cost_usd": Decimal("0.1")}))],
        minute(41),
        tenant.settings.late_data_window,
    )
    await visit(0, 30)
    second = await visit(40, None)
    await storage.events.append(
        tenant.id,
        [(0, Event(second, 1, "analysis", minute(41), meters={"cost_usd": Decimal("0.2")}))],
        minute(41),
        tenant.settings.late_data_window,
    )

    stats = await use_cases.report_usage_stats()(ReportUsageStatsQuery(tenant.id, "u1"))

    assert (stats.total_sessions, stats.total_duration_seconds, stats.total_events) == (3, 1800, 2)
    assert stats.meters == {"cost_usd": Decimal("0.3")}
    assert stats.total_credits_consumed == 0
