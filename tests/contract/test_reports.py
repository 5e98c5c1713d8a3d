"""Reports contract: the same figures from every store, computed where the data lives."""

from decimal import Decimal
from typing import Any

import pytest

from application.ports import Window
from application.reports.ports import EVERY
from domain.reports import ResourceActivity, UsageStats, WatchTime, in_group_order
from domain.session import Exit, SessionStatus
from domain.tenants import Tenant
from tests.contract.builders import NOW, SHUT, at, stored_session

pytestmark = pytest.mark.anyio


async def visit(
    storage: Any, tenant: Tenant, start: float, end: float | None, **fields: Any
) -> Any:
    session = await stored_session(storage, tenant, minutes=start, **fields)
    if end is not None:
        await storage.sessions.close(
            tenant.id,
            session.id,
            Exit(at=at(end), **fields.get("exit", {})),
            frozenset(),
            NOW,
            SHUT,
        )
    return session


async def test_watch_time_counts_overlapping_tabs_once(storage: Any, tenant: Tenant) -> None:
    await visit(storage, tenant, 0, 10, subject_id="ana")
    await visit(storage, tenant, 5, 20, subject_id="ana")  # a second tab
    await visit(storage, tenant, 30, 40, subject_id="ana")
    await visit(storage, tenant, 2, 3, subject_id="ben")
    await visit(storage, tenant, 2, None, subject_id="ben")  # still watching: not counted
    await visit(storage, tenant, 1, 9, subject_id=None, client_key="tab")  # anonymous
    await visit(storage, tenant, 1, 9, subject_id="ana", resource_id="other")

    report = await storage.reports.watch_time(tenant.id, "webinar-1", Window())

    assert report == [
        WatchTime("ana", 3, 35 * 60, 30 * 60),
        WatchTime("ben", 1, 60, 60),
    ]
    assert report[0].avg_seconds == 700.0
    windowed = await storage.reports.watch_time(tenant.id, "webinar-1", Window(at(4), at(31)))
    assert windowed == [WatchTime("ana", 2, 25 * 60, 25 * 60)]


async def test_watch_time_counts_a_visit_inside_an_earlier_one_once(
    storage: Any, tenant: Tenant
) -> None:
    # A visit wholly inside an earlier one adds nothing to the time watched (in SQL its share
    # is NULL, which the sum must skip), and a later visit adds only what reaches past the
    # furthest end so far, not past the end of the visit just before it.
    await visit(storage, tenant, 0, 20, subject_id="ana")
    await visit(storage, tenant, 5, 10, subject_id="ana")  # inside 0-20
    await visit(storage, tenant, 12, 14, subject_id="ana")  # inside 0-20, after 5-10 ended
    await visit(storage, tenant, 15, 25, subject_id="ana")  # 20-25 is new
    await visit(storage, tenant, 0, 20, subject_id="ben")
    await visit(storage, tenant, 5, 10, subject_id="ben")  # his last visit adds nothing

    report = await storage.reports.watch_time(tenant.id, "webinar-1", Window())

    # ana: 20 + 5 + 2 + 10 minutes of visits; watched the union 0-25.
    # ben: 20 + 5 minutes of visits; watched the union 0-20.
    assert report == [
        WatchTime("ana", 4, 37 * 60, 25 * 60),
        WatchTime("ben", 2, 25 * 60, 20 * 60),
    ]


async def test_resources_report_sessions_viewers_duration_now_and_peak(
    storage: Any, tenant: Tenant
) -> None:
    await visit(storage, tenant, 0, 10, subject_id="ana")
    await visit(storage, tenant, 5, 20, subject_id="ana")
    await visit(storage, tenant, 8, 12, subject_id="ben")
    await visit(storage, tenant, 15, None, subject_id="cho")
    await visit(storage, tenant, 12, 13, subject_id="dan")  # starts as ben leaves: no overlap
    await visit(storage, tenant, 0, 5, subject_id="eve", resource_id="webinar-2", kind="quiz")

    report = await storage.reports.resources(tenant.id, None, Window())

    assert report == [
        ResourceActivity("webinar-1", 5, 4, 4, 4, (10 + 15 + 4 + 1) * 60, 1, 3),
        ResourceActivity("webinar-2", 1, 1, 1, 1, 300, 0, 1),
    ]
    assert report[0].avg_duration_seconds == 450.0
    assert [
        r.resource_id for r in await storage.reports.resources(tenant.id, "quiz", Window())
    ] == ["webinar-2"]
    assert await storage.reports.active(tenant.id, None) == 1
    assert await storage.reports.active(tenant.id, "webinar-2") == 0


async def test_resources_report_unique_visitors_with_anonymous_browsers_and_ended_sessions(
    storage: Any, tenant: Tenant
) -> None:
    await visit(storage, tenant, 0, 10, subject_id="ana")
    await visit(storage, tenant, 20, 30, subject_id="ana")  # ana again: one visitor
    await visit(storage, tenant, 5, None, subject_id="ben")  # still watching
    await visit(storage, tenant, 1, 2, subject_id="cho", client_key="tab-3")  # signed in
    await visit(storage, tenant, 0, 5, subject_id=None, client_key="tab-1")
    await visit(storage, tenant, 6, None, subject_id=None, client_key="tab-1")  # tab-1 again
    left = await visit(storage, tenant, 3, None, subject_id=None, client_key="tab-2")
    gave_up = Exit(at=at(4), status=SessionStatus.ABANDONED)
    await storage.sessions.close(tenant.id, left.id, gave_up, frozenset(), NOW, SHUT)
    # A browser is counted by its anonymous sessions, apart from who signed in with it.
    await visit(storage, tenant, 7, 8, subject_id=None, client_key="tab-3")
    await visit(storage, tenant, 0, 1, subject_id=None, client_key="tab-9", resource_id="other")

    report = await storage.reports.resources(tenant.id, None, Window())
    webinar = next(r for r in report if r.resource_id == "webinar-1")

    # ana, ben, cho; then the browsers tab-1, tab-2 and tab-3.
    assert (webinar.total_sessions, webinar.unique_subjects, webinar.unique_visitors) == (8, 3, 6)
    # Every session but the two still active ended, whatever its status.
    assert (webinar.exited_sessions, webinar.active_now) == (6, 2)
    windowed = await storage.reports.resources(tenant.id, None, Window(at(5), at(21)))
    assert [(r.resource_id, r.unique_visitors, r.exited_sessions) for r in windowed] == [
        ("webinar-1", 4, 2)  # ana (her second visit), ben, tab-1, tab-3; two of them ended
    ]


async def test_usage_stats_add_up_a_subjects_sessions_exactly(storage: Any, tenant: Tenant) -> None:
    first = await stored_session(storage, tenant, kind="counseling")
    second = await stored_session(storage, tenant, minutes=10, kind="counseling")
    await storage.sessions.close(
        tenant.id,
        first.id,
        Exit(at=at(5), usage={"cost_usd": Decimal("0.10"), "tokens": 7}),
        frozenset(),
        NOW,
        SHUT,
    )
    await storage.sessions.close(
        tenant.id,
        second.id,
        Exit(at=at(12), usage={"cost_usd": Decimal("0.20")}, status=SessionStatus.ABANDONED),
        frozenset({"counseling"}),
        NOW,
        SHUT,
    )
    await storage.ledger.settle(tenant.id, second.id, 0, 4, at(13))
    await visit(storage, tenant, 0, 1, subject_id="someone-else")

    stats = await storage.reports.usage_stats(tenant.id, "user-1", Window())

    assert stats == UsageStats(
        total_sessions=2,
        total_duration_seconds=7 * 60,
        total_events=0,
        total_credits_consumed=4,
        meters={"cost_usd": Decimal("0.3"), "tokens": 7},
    )
    assert isinstance(stats.meters["cost_usd"], Decimal)


async def test_the_resources_report_grouped_by_a_dimension_counts_each_groups_sessions(
    storage: Any, tenant: Tenant
) -> None:
    def of(agency: Any) -> dict[str, Any]:
        return {"attributes": {"agency": agency, "room": "A"}}

    await visit(storage, tenant, 0, 10, subject_id="ana", **of("north"))
    # ana again, on the agency's other webinar: one subject and one visitor of the group.
    await visit(storage, tenant, 5, 20, subject_id="ana", resource_id="webinar-2", **of("north"))
    await visit(storage, tenant, 8, 12, subject_id="ben", **of("north"))  # 3 at once at 8-10
    await visit(storage, tenant, 15, None, subject_id="cho", resource_id="webinar-2", **of("north"))
    await visit(storage, tenant, 30, 40, subject_id=None, client_key="tab-1", **of("north"))
    await visit(storage, tenant, 0, 5, subject_id="dan", **of("south"))
    await visit(storage, tenant, 5, 15, subject_id="dan", **of("south"))  # as the first ends
    # Without the attribute: the last group, null. A number is grouped as its JSON text.
    await visit(storage, tenant, 0, 30, subject_id="eve", resource_id="webinar-2")
    await visit(storage, tenant, 10, 20, subject_id="fay", attributes={"room": "A"})
    await visit(storage, tenant, 0, 1, subject_id="gus", **of(7))

    report = await storage.reports.resources(tenant.id, None, Window(), EVERY, "agency")

    assert in_group_order(report) == [
        ResourceActivity(None, 1, 1, 1, 1, 60, 0, 1, group="7"),
        ResourceActivity(None, 5, 3, 4, 4, (10 + 15 + 4 + 10) * 60, 1, 3, group="north"),
        ResourceActivity(None, 2, 1, 1, 2, 15 * 60, 0, 1, group="south"),
        ResourceActivity(None, 2, 2, 2, 2, 40 * 60, 0, 2, group=None),
    ]
    # Filtered too: the groups of the sessions kept, the windowed sessions' figures.
    room_a = await storage.reports.resources(
        tenant.id, None, Window(at(5), at(31)), (("room", "A"),), "agency"
    )
    assert in_group_order(room_a) == [
        ResourceActivity(None, 4, 3, 4, 3, (15 + 4 + 10) * 60, 1, 2, group="north"),
        ResourceActivity(None, 1, 1, 1, 1, 10 * 60, 0, 1, group="south"),
        ResourceActivity(None, 1, 1, 1, 1, 10 * 60, 0, 1, group=None),
    ]
    ungrouped = await storage.reports.resources(tenant.id, None, Window())
    assert [(r.resource_id, r.group, r.total_sessions) for r in ungrouped] == [
        ("webinar-1", None, 7),
        ("webinar-2", None, 3),
    ]


async def test_watch_time_grouped_by_a_dimension_sums_each_viewers_time_in_the_group(
    storage: Any, tenant: Tenant
) -> None:
    def of(agency: str) -> dict[str, Any]:
        return {"attributes": {"agency": agency}}

    await visit(storage, tenant, 0, 10, subject_id="ana", **of("north"))
    await visit(storage, tenant, 5, 20, subject_id="ana", **of("north"))  # a second tab
    # ana's visit of another group overlaps her first group's: in its own group it counts whole.
    await visit(storage, tenant, 15, 25, subject_id="ana", **of("south"))
    await visit(storage, tenant, 2, 3, subject_id="ben", **of("north"))  # two viewers: both
    await visit(storage, tenant, 50, 55, subject_id="ben")
    await visit(storage, tenant, 50, 60, subject_id="cho")
    await visit(storage, tenant, 2, None, subject_id="dan", **of("north"))  # still watching
    await visit(storage, tenant, 1, 9, subject_id=None, client_key="tab", **of("north"))
    await visit(storage, tenant, 1, 9, subject_id="ana", resource_id="other", **of("north"))

    report = await storage.reports.watch_time(tenant.id, "webinar-1", Window(), EVERY, "agency")

    # north: ana 10 + 15 minutes, watched 0-20; ben 1 minute. The others' visits count whole.
    assert in_group_order(report) == [
        WatchTime(None, 3, (10 + 15 + 1) * 60, (20 + 1) * 60, group="north"),
        WatchTime(None, 1, 10 * 60, 10 * 60, group="south"),
        WatchTime(None, 2, 15 * 60, 15 * 60, group=None),
    ]
    assert in_group_order(report)[0].avg_seconds == 520.0
    windowed = await storage.reports.watch_time(
        tenant.id, "webinar-1", Window(at(4), at(31)), (("agency", "north"),), "agency"
    )
    assert windowed == [WatchTime(None, 1, 15 * 60, 15 * 60, group="north")]
    ungrouped = await storage.reports.watch_time(tenant.id, "webinar-1", Window())
    assert [(w.subject_id, w.group, w.unique_seconds) for w in ungrouped] == [
        ("ana", None, 25 * 60),
        ("ben", None, 6 * 60),
        ("cho", None, 10 * 60),
    ]
