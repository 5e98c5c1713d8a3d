"""Kiosk telemetry on every store: errors, performance metrics and sales, each idempotent by its
client id, listed and reported where they are stored."""

import random
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from application.pagination import Position
from application.ports import Window
from domain.error_reports import ErrorFilter, ErrorGroup, ErrorGrouping, ErrorReport, Severity
from domain.performance import GroupBy, StepTimes, nearest_rank
from domain.sales import (
    PaymentMethod,
    SalesFilter,
    SalesGrouping,
    SaleStatus,
    Settlement,
    SettlementState,
    sales_totals,
)
from domain.tenants import Tenant
from tests.contract.builders import add_tenant, at, stored_session
from tests.contract.races import Race
from tests.contract.telemetry_builders import (
    a_full_error,
    a_metric,
    a_refund,
    a_sale,
    amounts,
    an_error,
    an_item,
    loss,
)

pytestmark = pytest.mark.anyio

EVERY_ERROR, EVERY_SALE, ANY_TIME = ErrorFilter(), SalesFilter(), Window()


# --- what every log shares: one record per client id ---------------------------------------


@pytest.mark.parametrize("log", ["errors", "metrics", "sales"])
async def test_a_new_id_is_stored_and_an_id_seen_before_answers_what_was_stored(
    storage: Any, tenant: Tenant, log: str
) -> None:
    session = await stored_session(storage, tenant)
    first, other = _records(log, session.id, "a"), _records(log, session.id, "a", changed=True)

    stored = await getattr(storage, log).add(tenant.id, [first, _records(log, session.id, "b")])
    again = await getattr(storage, log).add(tenant.id, [other, first])
    in_one_batch = await getattr(storage, log).add(
        tenant.id, [_records(log, session.id, "c"), _records(log, session.id, "c", changed=True)]
    )

    assert stored == [None, None]
    assert again == [first, first]  # the caller tells a replay from a conflict
    assert in_one_batch == [None, _records(log, session.id, "c")]


@pytest.mark.parametrize("log", ["errors", "metrics", "sales"])
async def test_of_concurrent_adds_of_one_id_exactly_one_stores_it(
    storage: Any, tenant: Tenant, race: Race, log: str
) -> None:
    session = await stored_session(storage, tenant)
    record = _records(log, session.id, "once")

    outcomes = await race(*[lambda s: getattr(s, log).add(tenant.id, [record])] * 6)

    assert sorted(o[0] is None for o in outcomes) == [False] * 5 + [True]
    assert all(o == [record] for o in outcomes if o[0] is not None)


@pytest.mark.parametrize("log", ["errors", "metrics", "sales"])
async def test_ids_are_per_tenant(storage: Any, tenant: Tenant, log: str) -> None:
    other = await add_tenant(storage, "other")
    mine, theirs = await stored_session(storage, tenant), await stored_session(storage, other)

    assert await getattr(storage, log).add(tenant.id, [_records(log, mine.id, "x")]) == [None]
    assert await getattr(storage, log).add(other.id, [_records(log, theirs.id, "x")]) == [None]


def _records(log: str, session_id: str, id: str, changed: bool = False) -> Any:
    if log == "errors":
        return an_error(id, session_id=session_id, message="changed" if changed else "paper jam")
    if log == "metrics":
        return a_metric(id, 2500.0 if changed else 1200.0, session_id=session_id)
    return a_sale(id, session_id, amounts=amounts("9000" if changed else "20000"))


# --- errors -------------------------------------------------------------------------------


async def test_an_error_comes_back_as_it_was_sent(storage: Any, tenant: Tenant) -> None:
    session = await stored_session(storage, tenant)
    full, bare = a_full_error("full", session.id), an_error("bare", 1)
    await storage.errors.add(tenant.id, [full, bare])

    found = await storage.errors.find(tenant.id, ErrorFilter(), Window(), 10)

    assert found == [full, bare]  # newest first
    assert await storage.errors.add(tenant.id, [full, bare]) == [full, bare]


async def test_errors_are_listed_newest_first_by_filter_and_window_a_page_at_a_time(
    storage: Any, tenant: Tenant
) -> None:
    errors = [
        an_error("e1", 1, device_id="kiosk-1", app_version="1.4.2"),
        an_error("e2", 2, device_id="kiosk-2", app_version="1.5.0", severity=Severity.FATAL),
        an_error("e3", 3, device_id="kiosk-1", app_version="1.5.0", type="CameraError"),
        an_error("e4", 3, device_id="kiosk-2", app_version="1.5.0"),  # same instant as e3
        an_error("e5", 60 * 24, device_id="kiosk-1"),
    ]
    await storage.errors.add(tenant.id, errors)
    await storage.errors.add((await add_tenant(storage, "other")).id, [an_error("e9", 2)])

    async def ids(
        where: ErrorFilter = EVERY_ERROR, window: Window = ANY_TIME, **kw: Any
    ) -> list[str]:
        found = await storage.errors.find(
            tenant.id, where, window, kw.get("limit", 10), kw.get("after")
        )
        return [e.id for e in found]

    assert await ids() == ["e5", "e4", "e3", "e2", "e1"]
    assert await ids(ErrorFilter(device_id="kiosk-1")) == ["e5", "e3", "e1"]
    assert await ids(ErrorFilter(app_version="1.5.0", device_id="kiosk-2")) == ["e4", "e2"]
    assert await ids(ErrorFilter(severity=Severity.FATAL)) == ["e2"]
    fingerprint = errors[2].fingerprint
    assert await ids(ErrorFilter(fingerprint=fingerprint)) == ["e3"]
    assert await ids(window=Window(at(2), at(60))) == ["e4", "e3", "e2"]
    assert await ids(limit=2) == ["e5", "e4"]
    assert await ids(after=Position(at(3), "e4")) == ["e3", "e2", "e1"]


async def test_the_error_report_groups_one_fault_across_devices_builds_and_sessions(
    storage: Any, tenant: Tenant
) -> None:
    s1, s2 = await stored_session(storage, tenant), await stored_session(storage, tenant)
    jam_142 = 'File "/opt/kiosk/1.4.2/printer.py", line 120, in print_photo'
    jam_150 = 'File "/opt/kiosk/1.5.0/printer.py", line 131, in print_photo'
    await storage.errors.add(
        tenant.id,
        [
            an_error(
                "j1",
                1,
                device_id="kiosk-1",
                session_id=s1.id,
                stack_trace=jam_142,
                impact=loss("0.1"),
            ),
            an_error(
                "j2",
                2,
                device_id="kiosk-2",
                app_version="1.5.0",
                session_id=s2.id,
                stack_trace=jam_150,
                severity=Severity.FATAL,
                impact=loss("0.2"),
            ),
            an_error(
                "j3",
                5,
                device_id="kiosk-2",
                app_version="1.5.0",
                session_id=s2.id,
                stack_trace=jam_150,
                message="paper jam again",
                severity=Severity.WARNING,
                impact=loss("9.99", "USD"),
            ),
            an_error("j4", 6, device_id="kiosk-3", stack_trace=jam_142),  # before a session
            an_error("c1", 4, type="CameraError", code="CAM_TIMEOUT", device_id="kiosk-1"),
            an_error("c2", 9, type="CameraError", code="CAM_TIMEOUT", device_id="kiosk-1"),
            an_error("late", 60 * 24, device_id="kiosk-9"),
        ],
    )

    report = await storage.errors.report(tenant.id, ErrorFilter(), Window(at(0), at(60)))

    jam, camera = report
    assert (jam.count, jam.devices, jam.sessions) == (4, 3, 2)
    assert (jam.first_seen, jam.last_seen) == (at(1), at(6))
    assert (jam.type, jam.code, jam.sample_message) == ("PrinterError", None, "paper jam")
    assert jam.app_versions == {"1.4.2": 2, "1.5.0": 2}
    assert jam.severity is Severity.FATAL
    assert jam.sales_lost == 3
    assert jam.estimated_loss == {"KRW": Decimal("0.3"), "USD": Decimal("9.99")}  # exact
    assert (camera.count, camera.devices, camera.sessions, camera.sales_lost) == (2, 1, 0, 0)
    assert (camera.code, camera.severity, camera.estimated_loss) == (
        "CAM_TIMEOUT",
        Severity.ERROR,
        {},
    )


async def test_the_error_report_by_version_or_device_and_most_frequent_first(
    storage: Any, tenant: Tenant
) -> None:
    await storage.errors.add(
        tenant.id,
        [an_error(f"a{i}", i, type="A", app_version="1.5.0") for i in range(3)]
        + [an_error(f"b{i}", i, type="B", device_id="kiosk-2") for i in range(2)]
        + [an_error(f"c{i}", i, type="C") for i in range(4)],
    )

    everything = await storage.errors.report(tenant.id, ErrorFilter(), Window())
    new_version = await storage.errors.report(tenant.id, ErrorFilter(app_version="1.5.0"), Window())
    one_device = await storage.errors.report(tenant.id, ErrorFilter(device_id="kiosk-2"), Window())

    assert [(g.type, g.count) for g in everything] == [("C", 4), ("A", 3), ("B", 2)]
    assert [(g.type, g.count) for g in new_version] == [("A", 3)]
    assert [(g.type, g.app_versions) for g in one_device] == [("B", {"1.4.2": 2})]
    other = await add_tenant(storage, "other")
    assert await storage.errors.report(other.id, ErrorFilter(), Window()) == []


async def test_the_error_report_by_day_gives_each_local_day_what_a_window_of_it_alone_gives(
    storage: Any,
) -> None:
    tenant = await add_tenant(storage, "seoul", time_zone="Asia/Seoul")
    s1, s2 = await stored_session(storage, tenant), await stored_session(storage, tenant)
    seoul = tenant.settings.calendar
    # Midnight of 25 November in Seoul is 15:00 UTC on the 24th: one UTC day holds both sides.
    midnight = seoul.day(date(2026, 11, 25)).start
    jam = 'File "/opt/kiosk/printer.py", line 120, in print_photo'  # one fault, many messages

    def around_midnight(id: str, minutes: float, **fields: Any) -> ErrorReport:
        return an_error(id, at=midnight + timedelta(minutes=minutes), **fields)

    camera = {"type": "CameraError", "code": "CAM_TIMEOUT"}
    await storage.errors.add(
        tenant.id,
        [
            around_midnight("j1", -50, session_id=s1.id, stack_trace=jam, impact=loss("0.1")),
            around_midnight("c1", -20, **camera),
            around_midnight(
                "j2",
                -1 / 60,  # a second before midnight
                device_id="kiosk-2",
                app_version="1.5.0",
                session_id=s2.id,
                stack_trace=jam,
                severity=Severity.FATAL,
                impact=loss("0.2"),
            ),
            around_midnight(
                "j3",
                0,
                device_id="kiosk-2",
                app_version="1.5.0",
                session_id=s2.id,
                stack_trace=jam,
                severity=Severity.WARNING,
                impact=loss("9.99", "USD"),
            ),
            around_midnight("j4", 30, device_id="kiosk-3", stack_trace=jam, message="tray 2"),
            around_midnight("c2", 40, **camera),
            around_midnight("c3", 50, device_id="kiosk-2", app_version="1.5.0", **camera),
            around_midnight("next-day", 24 * 60 + 1, device_id="kiosk-9"),
        ],
    )

    async def by_day(time_zone: str) -> list[ErrorGroup]:
        grouping = ErrorGrouping.parse("day", time_zone)
        report: list[ErrorGroup] = await storage.errors.report(
            tenant.id, EVERY_ERROR, ANY_TIME, grouping
        )
        return report

    in_seoul, in_utc = await by_day(seoul.time_zone), await by_day("UTC")

    days = ["2026-11-24", "2026-11-25", "2026-11-26"]
    assert [g.day for g in in_seoul] == [days[0]] * 2 + [days[1]] * 2 + [days[2]]
    for label in days:
        day = seoul.day(date.fromisoformat(label))
        alone = await storage.errors.report(tenant.id, EVERY_ERROR, Window(day.start, day.end))
        assert [replace(g, day=None) for g in in_seoul if g.day == label] == alone, label
    jam_before, camera_before, *_ = in_seoul
    jam_after = next(g for g in in_seoul if g.day == days[1] and g.type == "PrinterError")
    assert (jam_before.count, jam_before.devices, jam_before.sessions) == (2, 2, 2)
    assert (jam_before.severity, jam_before.sales_lost) == (Severity.FATAL, 2)
    assert jam_before.estimated_loss == {"KRW": Decimal("0.3")}
    assert jam_before.app_versions == {"1.4.2": 1, "1.5.0": 1}
    assert (jam_before.last_seen, jam_after.first_seen) == (
        midnight - timedelta(seconds=1),
        midnight,
    )
    assert (jam_after.count, jam_after.sessions, jam_after.severity) == (2, 1, Severity.ERROR)
    assert (jam_after.sample_message, jam_after.estimated_loss) == (
        "tray 2",
        {"USD": Decimal("9.99")},
    )
    assert camera_before.count == 1
    assert [(g.day, g.type, g.count) for g in in_utc] == [
        ("2026-11-24", "PrinterError", 4),
        ("2026-11-24", "CameraError", 3),
        ("2026-11-25", "PrinterError", 1),
    ]
    ungrouped = await storage.errors.report(tenant.id, EVERY_ERROR, ANY_TIME)
    assert [(g.day, g.count) for g in ungrouped] == [(None, 4), (None, 3), (None, 1)]


async def test_the_day_the_clocks_go_back_groups_its_25_hours_of_errors(storage: Any) -> None:
    tenant = await add_tenant(storage, "new-york", time_zone="America/New_York")
    new_york = tenant.settings.calendar
    fall_back = new_york.day(date(2026, 11, 1))  # 02:00 daylight time is 01:00 standard time
    assert fall_back.end - fall_back.start == timedelta(hours=25)
    instants = [
        fall_back.start + timedelta(minutes=30),  # 00:30, daylight time
        fall_back.end - timedelta(minutes=30),  # 23:30, standard time: still 1 November
        fall_back.end + timedelta(minutes=10),  # 00:10 on 2 November
    ]
    await storage.errors.add(tenant.id, [an_error(f"e{i}", at=t) for i, t in enumerate(instants)])

    grouping = ErrorGrouping.parse("day", new_york.time_zone)
    report = await storage.errors.report(tenant.id, EVERY_ERROR, ANY_TIME, grouping)

    assert [(g.day, g.count) for g in report] == [("2026-11-01", 2), ("2026-11-02", 1)]


# --- performance --------------------------------------------------------------------------


async def test_performance_percentiles_are_exact_nearest_rank_per_type_and_version(
    storage: Any, tenant: Tenant
) -> None:
    rng = random.Random(12)
    old = [round(rng.uniform(50, 5000), 3) for _ in range(137)]
    new = [round(rng.uniform(50, 9000), 3) for _ in range(64)]
    metrics = [
        a_metric(
            f"o{i}", ms, i % 50, success=i % 10 != 0, breakdown={"focus": ms / 4, "shoot": ms / 2}
        )
        for i, ms in enumerate(old)
    ] + [a_metric(f"n{i}", ms, i % 50, app_version="1.5.0") for i, ms in enumerate(new)]
    metrics.append(a_metric("print", 8000.0, 5, type="print"))
    metrics.append(a_metric("outside", 1.0, 60 * 24))
    for start in range(0, len(metrics), 100):
        await storage.metrics.add(tenant.id, metrics[start : start + 100])

    rows = await storage.metrics.report(tenant.id, None, Window(at(0), at(60)), GroupBy.APP_VERSION)

    assert [(r.type, r.group, r.count) for r in rows] == [
        ("capture", "1.4.2", 137),
        ("capture", "1.5.0", 64),
        ("print", "1.4.2", 1),
    ]
    capture_old, capture_new, printing = rows
    for row, values in ((capture_old, old), (capture_new, new)):
        ordered = sorted(values)
        expected = [nearest_rank(ordered, p) for p in (50, 95, 99)] + [ordered[-1]]
        assert [row.p50_ms, row.p95_ms, row.p99_ms, row.max_ms] == pytest.approx(expected, abs=1e-9)
    assert capture_old.successes == 137 - 14
    assert capture_new.breakdown == {}
    assert capture_old.breakdown["focus"] == pytest.approx(
        StepTimes(*(nearest_rank(sorted(v / 4 for v in old), p) for p in (50, 95)))
    )
    assert set(capture_old.breakdown) == {"focus", "shoot"}
    assert (printing.p50_ms, printing.p99_ms, printing.max_ms) == (8000.0, 8000.0, 8000.0)


async def test_the_performance_report_by_device_and_for_one_type(
    storage: Any, tenant: Tenant
) -> None:
    await storage.metrics.add(
        tenant.id,
        [
            a_metric("a", 100.0, device_id="kiosk-1"),
            a_metric("b", 300.0, 1, device_id="kiosk-1", success=False),
            a_metric("c", 200.0, 2, device_id="kiosk-2"),
            a_metric("d", 900.0, 2, device_id="kiosk-2", type="print"),
        ],
    )
    other = await add_tenant(storage, "other")
    await storage.metrics.add(other.id, [a_metric("a", 5.0)])

    rows = await storage.metrics.report(tenant.id, "capture", Window(), GroupBy.DEVICE_ID)

    assert [(r.group, r.count, r.successes, r.p50_ms, r.max_ms) for r in rows] == [
        ("kiosk-1", 2, 1, 100.0, 300.0),
        ("kiosk-2", 1, 1, 200.0, 200.0),
    ]
    assert rows[0].success_rate == 0.5


async def test_a_metric_comes_back_as_it_was_sent(storage: Any, tenant: Tenant) -> None:
    session = await stored_session(storage, tenant)
    metric = a_metric(
        "m",
        1234.567,
        session_id=session.id,
        success=False,
        error_code="TIMEOUT",
        breakdown={"focus": 200.5, "shoot": 0.0},
        context={"lens": "wide", "iso": 800},
    )
    await storage.metrics.add(tenant.id, [metric])

    assert await storage.metrics.add(tenant.id, [metric]) == [metric]


# --- sales --------------------------------------------------------------------------------


async def test_a_sale_comes_back_as_it_was_sent_with_exact_amounts(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)
    sale = a_sale(
        "s1",
        session.id,
        currency="USD",
        amounts=amounts(
            "999999999999999.999999999", "0.000000001", "12.5", "999999999999999.999999998"
        ),
        items=(an_item("frame-gold", 2, "4.999999999"), an_item("print-4x6", 1, "0")),
        attributes={"store": "gangnam-1", "copies": 2, "promo": True, "ratio": 1.5},
    )
    refund = a_refund("r1", sale, "5")
    await storage.sales.add(tenant.id, [sale, refund])

    assert await storage.sales.get_many(tenant.id, ["s1", "r1", "nope"]) == {
        "s1": sale,
        "r1": refund,
    }
    assert await storage.sales.add(tenant.id, [sale]) == [sale]


async def test_a_settlement_moves_only_from_the_state_expected(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)
    await storage.sales.add(tenant.id, [a_sale("s1", session.id)])
    settled = Settlement(
        SettlementState.SETTLED, (at(0) + timedelta(days=2)).date(), at(60 * 48), "batch-7"
    )

    moved = await storage.sales.move_settlement(tenant.id, "s1", SettlementState.PENDING, settled)
    again = await storage.sales.move_settlement(
        tenant.id, "s1", SettlementState.PENDING, Settlement(SettlementState.DISPUTED)
    )
    missing = await storage.sales.move_settlement(
        tenant.id, "nope", SettlementState.PENDING, settled
    )

    assert (moved, again, missing) == (True, False, False)
    stored = (await storage.sales.get_many(tenant.id, ["s1"]))["s1"]
    assert stored.settlement == settled
    assert stored.same_as(a_sale("s1", session.id))
    assert await storage.sales.add(tenant.id, [a_sale("s1", session.id)]) == [stored]


async def test_of_concurrent_settlement_moves_from_one_state_exactly_one_wins(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    session = await stored_session(storage, tenant)
    await storage.sales.add(tenant.id, [a_sale("s1", session.id)])
    targets = [Settlement(SettlementState.SETTLED, batch_id=f"b{i}") for i in range(4)] + [
        Settlement(SettlementState.DISPUTED) for _ in range(4)
    ]

    won = await race(
        *(
            (lambda s, t=t: s.sales.move_settlement(tenant.id, "s1", SettlementState.PENDING, t))
            for t in targets
        )
    )

    assert sum(won) == 1
    winner = targets[won.index(True)]
    assert (await storage.sales.get_many(tenant.id, ["s1"]))["s1"].settlement == winner


async def test_sales_are_listed_newest_first_by_session_device_state_and_window(
    storage: Any, tenant: Tenant
) -> None:
    s1, s2 = await stored_session(storage, tenant), await stored_session(storage, tenant)
    await storage.sales.add(
        tenant.id,
        [
            a_sale("a", s1.id, 1),
            a_sale("b", s1.id, 2, device_id="kiosk-2"),
            a_sale("c", s2.id, 2),
            a_sale("d", s2.id, 60 * 24),
        ],
    )
    await storage.sales.move_settlement(
        tenant.id, "c", SettlementState.PENDING, Settlement(SettlementState.SETTLED)
    )

    async def ids(
        where: SalesFilter = EVERY_SALE, window: Window = ANY_TIME, **kw: Any
    ) -> list[str]:
        found = await storage.sales.find(
            tenant.id, where, window, kw.get("limit", 10), kw.get("after")
        )
        return [s.id for s in found]

    assert await ids() == ["d", "c", "b", "a"]
    assert await ids(SalesFilter(session_id=s1.id)) == ["b", "a"]
    assert await ids(SalesFilter(device_id="kiosk-2")) == ["b"]
    assert await ids(SalesFilter(state=SettlementState.SETTLED)) == ["c"]
    assert await ids(window=Window(at(2), at(60))) == ["c", "b"]
    assert await ids(limit=1, after=Position(at(2), "c")) == ["b"]


async def test_sales_figures_are_exact_sums_per_group_currency_method_and_state(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)
    day_two = 60 * 24
    cheap = a_sale(
        "a",
        session.id,
        1,
        amounts=amounts("0.1", tax="0.01", net="0.11"),
        attributes={"store": "gangnam"},
    )
    await storage.sales.add(
        tenant.id,
        [
            cheap,
            a_sale(
                "b",
                session.id,
                2,
                amounts=amounts("0.2", "0.05"),
                payment_method=PaymentMethod.CASH,
                attributes={"store": "gangnam"},
            ),
            a_sale(
                "c",
                session.id,
                3,
                device_id="kiosk-2",
                currency="USD",
                amounts=amounts("999999999999999.5"),
                attributes={"store": "hongdae"},
            ),
            a_sale(
                "d",
                session.id,
                4,
                device_id="kiosk-2",
                currency="USD",
                amounts=amounts("999999999999999.5"),
                attributes={"store": 7},
            ),
            a_sale("f", session.id, 5, status=SaleStatus.FAILED, amounts=amounts("50")),
            a_refund("r", cheap, "0.11", minutes=day_two),
        ],
    )
    await storage.sales.move_settlement(
        tenant.id, "a", SettlementState.PENDING, Settlement(SettlementState.SETTLED)
    )

    async def totals(grouping: str, currency: str | None = None) -> list[tuple[Any, ...]]:
        figures = await storage.sales.report(
            tenant.id, Window(), SalesGrouping.parse(grouping), currency
        )
        return [
            (
                t.group,
                t.currency,
                t.count,
                t.gross,
                t.discount,
                t.tax,
                t.net,
                t.refunded,
                t.by_method,
                t.by_state,
            )
            for t in sales_totals(figures)
        ]

    assert await totals("device_id") == [
        (
            "kiosk-1",
            "KRW",
            2,
            Decimal("0.3"),
            Decimal("0.05"),
            Decimal("0.01"),
            Decimal("0.26"),
            Decimal("0.11"),
            {"card": Decimal("0.11"), "cash": Decimal("0.15")},
            {"settled": Decimal("0.11"), "pending": Decimal("0.15")},
        ),
        (
            "kiosk-2",
            "USD",
            2,
            Decimal("1999999999999999"),
            0,
            0,
            Decimal("1999999999999999"),
            0,
            {"card": Decimal("1999999999999999")},
            {"pending": Decimal("1999999999999999")},
        ),
    ]
    by_day = await totals("day", "KRW")
    assert [(g, c, n, net, refunded) for g, c, n, _, _, _, net, refunded, _, _ in by_day] == [
        (at(0).date().isoformat(), "KRW", 2, Decimal("0.26"), 0),
        ((at(0) + timedelta(days=1)).date().isoformat(), "KRW", 0, 0, Decimal("0.11")),
    ]
    by_store = await totals("attributes.store")
    assert [(g, c, n) for g, c, n, *_ in by_store] == [
        ("7", "USD", 1),
        ("gangnam", "KRW", 2),
        ("hongdae", "USD", 1),
        (None, "KRW", 0),
    ]


async def test_a_window_bounds_the_sales_report(storage: Any, tenant: Tenant) -> None:
    session = await stored_session(storage, tenant)
    await storage.sales.add(tenant.id, [a_sale("a", session.id, 1), a_sale("b", session.id, 90)])

    figures = await storage.sales.report(
        tenant.id, Window(at(60), at(120)), SalesGrouping.parse("device_id"), None
    )

    assert [(t.count, t.net) for t in sales_totals(figures)] == [(1, Decimal("20000"))]


# --- what retention leaves -----------------------------------------------------------------


async def test_retention_deletes_old_errors_and_metrics_in_batches_and_never_sales(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)
    await storage.errors.add(tenant.id, [an_error(f"e{i}", i) for i in range(5)])
    await storage.metrics.add(tenant.id, [a_metric(f"m{i}", 10.0, i) for i in range(5)])
    await storage.sales.add(tenant.id, [a_sale("s", session.id)])
    other = await add_tenant(storage, "other")
    await storage.errors.add(other.id, [an_error("e0", 0)])

    first = await storage.retention.delete_errors(tenant.id, at(3), 2)
    rest = await storage.retention.delete_errors(tenant.id, at(3), 2)
    metrics = await storage.retention.delete_metrics(tenant.id, at(2), 10)

    assert (first, rest, metrics) == (2, 1, 2)
    left = await storage.errors.find(tenant.id, ErrorFilter(), Window(), 10)
    assert [e.id for e in left] == ["e4", "e3"]
    assert [
        r.count for r in await storage.metrics.report(tenant.id, None, Window(), GroupBy.DEVICE_ID)
    ] == [3]
    assert len(await storage.errors.find(other.id, ErrorFilter(), Window(), 10)) == 1
    assert await storage.sessions.existing(tenant.id, [session.id, "nope"]) == {session.id}
    assert (await storage.sales.get_many(tenant.id, ["s"]))["s"].session_id == session.id


async def test_which_sessions_exist(storage: Any, tenant: Tenant) -> None:
    mine = await stored_session(storage, tenant)
    other = await add_tenant(storage, "other")
    theirs = await stored_session(storage, other)

    assert await storage.sessions.existing(tenant.id, [mine.id, theirs.id]) == {mine.id}
    assert await storage.sessions.existing(tenant.id, []) == set()
