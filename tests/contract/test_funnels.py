"""Funnels stored, and the events a funnel report streams: the same data set gives the same
report on every store."""

from typing import Any

import pytest

from application.funnels.ports import FunnelScope
from application.funnels.report_funnel import ReportFunnelQuery
from application.ports import Window
from domain.events import Event
from domain.funnels import Funnel, Stage, StageMatch, Touch, Trail
from domain.session import Exit, SessionStatus
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, SHUT, add_tenant, at, stored_session, wired

pytestmark = pytest.mark.anyio

PHOTO = Funnel(
    "photo",
    "kiosk",
    (
        Stage("frame", StageMatch("screen_enter", label="frame")),
        Stage("capture", StageMatch("capture")),
        Stage("payment", StageMatch("payment", category="card")),
    ),
)
WINDOW = Window(at(0), at(60))
TYPES = PHOTO.types


async def test_funnels_are_put_read_replaced_and_deleted_per_tenant(
    storage: Any, tenant: Tenant
) -> None:
    other = await add_tenant(storage, "globex")
    quiz = Funnel(
        "quiz", "practice", (Stage("open", StageMatch("open")), Stage("end", StageMatch("end")))
    )
    await storage.funnels.put(tenant.id, quiz)
    await storage.funnels.put(tenant.id, PHOTO)
    shorter = Funnel("photo", "kiosk", PHOTO.stages[:2])
    await storage.funnels.put(tenant.id, shorter)

    assert await storage.funnels.all(tenant.id) == [shorter, quiz]
    assert await storage.funnels.get(tenant.id, "photo") == shorter
    assert await storage.funnels.get(other.id, "photo") is None
    assert await storage.funnels.all(other.id) == []
    assert await storage.funnels.delete(other.id, "photo") is None
    assert await storage.funnels.delete(tenant.id, "photo") == shorter
    assert await storage.funnels.delete(tenant.id, "photo") is None
    assert await storage.funnels.all(tenant.id) == [quiz]


async def a_day_at_the_kiosk(storage: Any, tenant: Tenant) -> dict[str, str]:
    """Sessions of the kiosk in the window, one before it, one of another kind and one of
    another tenant, each with events of the funnel's types and others; by name, their ids."""
    ids = {}

    async def visit(name: str, minute: float, events: list[tuple[int, float, str, str | None, str | None]],
                    status: SessionStatus | None, kind: str = "kiosk", owner: Tenant = tenant) -> None:  # fmt: skip
        session = await stored_session(
            storage, owner, minute, kind=kind, subject_id=None, client_key=name
        )
        ids[name] = session.id
        batch = [
            (
                i,
                Event(
                    session.id, n, type, at(minute + second / 60), label=label, category=category
                ),
            )
            for i, (n, second, type, label, category) in enumerate(events)
        ]
        await storage.events.append(owner.id, batch, NOW, OPEN)
        if status is not None:
            await storage.sessions.close(
                owner.id, session.id, Exit(at(minute + 5), status), frozenset(), NOW, SHUT
            )

    frame = (1, 0, "screen_enter", "frame", None)
    # All the way, with noise: another screen, a heartbeat-like event, a capture retaken.
    await visit("ana", 1, [frame, (2, 5, "screen_enter", "background", None), (3, 10, "tap", None, None),
                           (4, 20, "capture", None, None), (5, 25, "capture", None, None),
                           (6, 50, "payment", None, "card")], SessionStatus.COMPLETED)  # fmt: skip
    # Numbered out of time order: the capture (numbered 1) happened after the frame.
    await visit("ben", 2, [(1, 40, "capture", None, None), (2, 10, "screen_enter", "frame", None),
                           (3, 70, "payment", None, "cash")], SessionStatus.ABANDONED)  # fmt: skip
    # Captured before choosing a frame: that capture does not count.
    await visit("cho", 3, [(1, 0, "capture", None, None), (2, 30, "screen_enter", "frame", None)],
                SessionStatus.TIMED_OUT)  # fmt: skip
    await visit("dan", 4, [(1, 0, "tap", None, None)], SessionStatus.CANCELLED)  # nothing matching
    await visit("eve", 5, [frame], None)  # still at the kiosk
    await visit("old", -10, [frame], SessionStatus.ABANDONED)  # before the window
    await visit("web", 6, [frame], SessionStatus.ABANDONED, kind="webinar")
    globex = await add_tenant(storage, "globex")
    await visit("far", 7, [frame], SessionStatus.ABANDONED, owner=globex)
    return ids


async def test_trails_stream_the_matching_events_of_the_windows_sessions(
    storage: Any, tenant: Tenant
) -> None:
    ids = await a_day_at_the_kiosk(storage, tenant)

    trails = [t async for t in storage.funnel_events.trails(tenant.id, "kiosk", WINDOW, TYPES)]

    def touch(n: int, minute: float, second: float, type: str, label: str | None = None,
              category: str | None = None) -> Touch:  # fmt: skip
        return Touch(n, at(minute + second / 60), type, label, category)

    expected = [
        Trail(ids["ana"], SessionStatus.COMPLETED, [
            touch(1, 1, 0, "screen_enter", "frame"), touch(2, 1, 5, "screen_enter", "background"),
            touch(4, 1, 20, "capture"), touch(5, 1, 25, "capture"),
            touch(6, 1, 50, "payment", category="card"),
        ]),
        Trail(ids["ben"], SessionStatus.ABANDONED, [
            touch(2, 2, 10, "screen_enter", "frame"), touch(1, 2, 40, "capture"),
            touch(3, 2, 70, "payment", category="cash"),
        ]),
        Trail(ids["cho"], SessionStatus.TIMED_OUT, [
            touch(1, 3, 0, "capture"), touch(2, 3, 30, "screen_enter", "frame"),
        ]),
        Trail(ids["eve"], SessionStatus.ACTIVE, [touch(1, 5, 0, "screen_enter", "frame")]),
    ]  # fmt: skip
    assert trails == sorted(expected, key=lambda t: t.session_id)


async def test_statuses_count_the_windows_sessions_of_the_kind(
    storage: Any, tenant: Tenant
) -> None:
    await a_day_at_the_kiosk(storage, tenant)

    counts = (await storage.funnel_events.statuses(tenant.id, "kiosk", WINDOW))[None]

    assert {s: n for s, n in counts.items() if n} == {
        SessionStatus.COMPLETED: 1,
        SessionStatus.ABANDONED: 1,
        SessionStatus.TIMED_OUT: 1,
        SessionStatus.CANCELLED: 1,
        SessionStatus.ACTIVE: 1,
    }


async def test_the_same_data_set_gives_the_same_report_on_every_store(
    storage: Any, tenant: Tenant
) -> None:
    await a_day_at_the_kiosk(storage, tenant)
    await storage.funnels.put(tenant.id, PHOTO)

    report = (
        await wired(storage)
        .use_cases()
        .report_funnel()(ReportFunnelQuery(tenant.id, "photo", WINDOW.start, WINDOW.end))
    )

    assert report.sessions == 5
    assert [
        (s.name, s.reached, s.conversion_from_previous, s.conversion_from_start, s.dropped_here,
         s.median_seconds_in_stage)
        for s in report.stages
    ] == [
        ("frame", 4, 0.8, 0.8, 2, 25.0),  # ana 20 s, ben 30 s; cho and eve stop here
        ("capture", 2, 0.5, 0.4, 1, 30.0),  # ana 30 s to pay; ben paid cash
        ("payment", 1, 0.5, 0.2, 0, None),
    ]  # fmt: skip
    assert report.exit_statuses == {
        "active": 1, "completed": 1, "abandoned": 1, "timed_out": 1, "cancelled": 1, "failed": 0,
    }  # fmt: skip


async def test_a_scope_keeps_the_sessions_with_its_values_and_tells_each_ones_group(
    storage: Any, tenant: Tenant
) -> None:
    stores = {
        "ana": {"store_id": "S1"},
        "ben": {"store_id": 7},
        "cho": {},
        "dan": {"store_id": "S1"},
    }
    for n, (who, attributes) in enumerate(stores.items()):
        session = await stored_session(
            storage, tenant, n, kind="kiosk", resource_id=who, attributes=attributes
        )
        event = Event(session.id, 1, "capture", at(n + 0.5))
        await storage.events.append(tenant.id, [(0, event)], NOW, OPEN)
    events = storage.funnel_events

    async def groups(scope: FunnelScope) -> list[tuple[str, str | None]]:
        trails = events.trails(tenant.id, "kiosk", WINDOW, frozenset({"capture"}), scope)
        found = [(t.session_id, t.group) async for t in trails]
        return sorted(found, key=lambda pair: pair[1] or "~")

    by_store = await groups(FunnelScope(group_by="store_id"))
    counted = await events.statuses(tenant.id, "kiosk", WINDOW, FunnelScope(group_by="store_id"))
    only_s1 = await events.statuses(tenant.id, "kiosk", WINDOW, FunnelScope({"store_id": "S1"}))

    assert [group for _, group in by_store] == ["7", "S1", "S1", None]
    assert {g: sum(c.values()) for g, c in counted.items()} == {"S1": 2, "7": 1, None: 1}
    assert {g: sum(c.values()) for g, c in only_s1.items()} == {None: 2}
    assert len(await groups(FunnelScope({"store_id": "7"}))) == 1
