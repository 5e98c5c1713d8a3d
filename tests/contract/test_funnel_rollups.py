"""Funnels rolled up by day on every store: a day rolled up for good is read from its rollup and
gives the figures its events give, as a whole, filtered and grouped; a day still open, a funnel
changed or a resource deleted is read from the events until the next run rolls it up again."""

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from application.data_rights.delete_resource import DeleteResourceCommand
from application.funnels.report_funnel import ReportFunnelQuery
from application.retention.apply_retention import ApplyRetentionCommand
from application.rollups.roll_up_usage import RollUpUsageCommand
from domain.calendar import Calendar, Period
from domain.events import Event
from domain.funnels import Funnel, FunnelFigures
from domain.session import Exit, SessionStatus
from domain.tenants import Tenant, TenantSettings
from tests.contract.builders import NOW, OPEN, SHUT, T0, add_tenant, at, stored_session, wired
from tests.contract.test_funnels import PHOTO
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

SETTINGS = TenantSettings(dimensions=("store_id", "country"))
DAY = Calendar().bucket(Period.DAY, T0)  # 2026-11-24, UTC
NEXT_DAY = at(24 * 60)


async def kiosk_customers(storage: Any, tenant: Tenant) -> dict[str, str]:
    """Customers of two stores on T0's day, one still at the kiosk, one the next day; their
    session ids by name."""
    ids = {}
    customers = [
        # name, minute, store, seconds of frame/capture/payment (None: not reached), how it ended
        ("ana", 10, "S1", (0, 30, 90), SessionStatus.COMPLETED),
        ("ben", 20, "S1", (0, 45.5, None), SessionStatus.ABANDONED),
        ("cho", 30, "S2", (0, None, None), SessionStatus.TIMED_OUT),
        ("dan", 40, "S2", (None, None, None), SessionStatus.CANCELLED),
        ("eve", 50, "S2", (0, 12.3456, None), None),  # still at the kiosk
        ("fay", 24 * 60 + 5, "S1", (0, 20, 40), SessionStatus.COMPLETED),  # the next day
    ]
    for name, minute, store, seconds, status in customers:
        attributes = {"store_id": store, "country": "KR"}
        session = await stored_session(
            storage, tenant, minute, kind="kiosk", resource_id=f"kiosk-{store}", subject_id=None,
            client_key=name,
            attributes=attributes,
        )  # fmt: skip
        ids[name] = session.id
        touched = zip(("screen_enter", "capture", "payment"), seconds, strict=True)
        batch = [
            (n, Event(session.id, n + 1, type, at(minute + s / 60), label="frame", category="card"))
            for n, (type, s) in enumerate(touched)
            if s is not None
        ]
        await storage.events.append(tenant.id, batch, NOW, OPEN)
        if status is not None:
            await close(storage, tenant, session.id, at(minute + 3), status)
    return ids


async def close(
    storage: Any, tenant: Tenant, session_id: str, when: Any, status: SessionStatus
) -> None:
    await storage.sessions.close(tenant.id, session_id, Exit(when, status), frozenset(), NOW, SHUT)


async def report(storage: Any, tenant: Tenant, **asked: Any) -> FunnelFigures:
    query = ReportFunnelQuery(tenant.id, "photo", DAY.start, NEXT_DAY + timedelta(days=1))
    query = replace(query, settings=SETTINGS, **asked)
    clock = FakeClock(NEXT_DAY + timedelta(days=2))
    return await wired(storage, clock).use_cases().report_funnel()(query)


async def roll_up(storage: Any, tenant: Tenant, minutes_after_t0: float) -> int:
    """A rollup run at that time; how many funnel days it rolled up."""
    clock = FakeClock(at(minutes_after_t0))
    command = RollUpUsageCommand(tenant.name, since=DAY.start)
    run = await wired(storage, clock).jobs().roll_up_usage()(command)
    assert not run.failures
    return run.funnel_days


async def rolled_up_for_good(storage: Any, tenant: Tenant) -> tuple[Tenant, dict[str, str]]:
    """The customers, every one gone, and the funnel rolled up two days later: final days."""
    tenant = await storage.tenants.change_settings(tenant.id, lambda _: SETTINGS)
    ids = await kiosk_customers(storage, tenant)
    await close(storage, tenant, ids["eve"], at(53), SessionStatus.ABANDONED)
    await storage.funnels.put(tenant.id, PHOTO)
    await roll_up(storage, tenant, 2 * 24 * 60 + 120)
    return tenant, ids


def asked_ways() -> list[dict[str, Any]]:
    return [
        {},
        {"where": {"store_id": "S2"}},
        {"group_by": "attributes.store_id"},
        {"group_by": "attributes.country"},
    ]


async def test_a_day_rolled_up_for_good_gives_what_its_events_give(
    storage: Any, tenant: Tenant
) -> None:
    tenant = await storage.tenants.change_settings(tenant.id, lambda _: SETTINGS)
    ids = await kiosk_customers(storage, tenant)
    await storage.funnels.put(tenant.id, PHOTO)
    from_events = [await report(storage, tenant, **asked) for asked in asked_ways()]

    # Eve is still at the kiosk: the day is rolled up, not for good, and still read from events.
    assert await roll_up(storage, tenant, 24 * 60 + 30) == 2  # T0's day and the next
    fingerprint = PHOTO.fingerprint(SETTINGS.dimensions)
    stored = await storage.funnel_days.stored(tenant.id, "photo", fingerprint, [DAY])
    assert stored == {DAY.start: False}
    await close(storage, tenant, ids["eve"], at(53), SessionStatus.ABANDONED)
    from_events = [await report(storage, tenant, **asked) for asked in asked_ways()]
    assert await roll_up(storage, tenant, 2 * 24 * 60 + 120) == 3  # and the day after
    stored = await storage.funnel_days.stored(tenant.id, "photo", fingerprint, [DAY])
    assert stored == {DAY.start: True}

    from_rollups = [await report(storage, tenant, **asked) for asked in asked_ways()]

    assert from_rollups == from_events
    whole = from_rollups[0]
    assert (whole.sessions, [s.reached for s in whole.stages]) == (6, [5, 4, 2])
    # To the capture 12.3 (eve's 12.3456 s, to 3 significant digits), 20, 30 and 45.5 s.
    assert [s.median_seconds_in_stage for s in whole.stages] == [25.0, 40.0, None]
    assert [g.group for g in from_rollups[2].groups] == ["S1", "S2"]
    assert from_rollups[1].sessions == 3


async def test_a_day_rolled_up_for_good_is_read_from_its_rollup_until_a_run_recounts_it(
    storage: Any, tenant: Tenant
) -> None:
    tenant, ids = await rolled_up_for_good(storage, tenant)
    before = await report(storage, tenant)

    # Cho pays after all, days later: stored without the use case, so nothing asks for a rerun.
    payment = Event(ids["cho"], 9, "payment", at(30 + 1), category="card")
    await storage.events.append(tenant.id, [(0, payment)], NOW, OPEN)
    unchanged = await report(storage, tenant)
    await roll_up(storage, tenant, 2 * 24 * 60 + 120)  # since T0's day: recounted
    recounted = await report(storage, tenant)

    assert unchanged == before
    assert [s.reached for s in recounted.stages] == [5, 4, 2]  # a payment without a capture
    capture = Event(ids["cho"], 8, "capture", at(30 + 0.5))
    await storage.events.append(tenant.id, [(0, capture)], NOW, OPEN)
    await roll_up(storage, tenant, 2 * 24 * 60 + 120)
    assert [s.reached for s in (await report(storage, tenant)).stages] == [5, 5, 3]


async def test_a_funnel_changed_is_read_from_events_until_its_days_are_rolled_up_again(
    storage: Any, tenant: Tenant
) -> None:
    tenant, _ = await rolled_up_for_good(storage, tenant)

    shorter = Funnel("photo", "kiosk", PHOTO.stages[1:])
    await storage.funnels.put(tenant.id, shorter)
    from_events = await report(storage, tenant)
    # A run that recomputes no hour still fills in the days the new definition lacks.
    later = FakeClock(at(2 * 24 * 60 + 120))
    run = await wired(storage, later).jobs().roll_up_usage()(RollUpUsageCommand(tenant.name))
    from_rollups = await report(storage, tenant)

    assert [s.name for s in from_events.stages] == ["capture", "payment"]
    assert [s.reached for s in from_events.stages] == [4, 2]
    assert run.funnel_days == 3  # T0's day, the next and today
    assert from_rollups == from_events


async def test_a_deleted_resource_leaves_the_days_and_deleted_funnels_take_theirs(
    storage: Any, tenant: Tenant
) -> None:
    tenant, _ = await rolled_up_for_good(storage, tenant)
    fingerprint = PHOTO.fingerprint(SETTINGS.dimensions)
    days = [DAY, Calendar().bucket(Period.DAY, NEXT_DAY)]

    use_cases = wired(storage, FakeClock(at(2 * 24 * 60 + 120))).use_cases()
    await use_cases.delete_resource()(DeleteResourceCommand(tenant, "kiosk-S2"))
    after_deletion = await report(storage, tenant)
    stored = await storage.funnel_days.stored(tenant.id, "photo", fingerprint, days)
    await storage.funnels.delete(tenant.id, "photo")
    await storage.funnel_days.forget(tenant.id, "photo")

    assert stored == {DAY.start: False, DAY.end: False}  # recounted from the events left
    assert after_deletion.sessions == 3  # S1's ana, ben and fay
    assert await storage.funnel_days.stored(tenant.id, "photo", fingerprint, days) == {}


async def test_retention_takes_a_funnels_days_with_the_daily_rollups(
    storage: Any, tenant: Tenant
) -> None:
    settings = replace(SETTINGS, daily_rollup_retention_days=30)
    tenant = await storage.tenants.change_settings(tenant.id, lambda _: settings)
    other = await add_tenant(storage, "globex", dimensions=("store_id", "country"))
    for owner in (tenant, other):
        await kiosk_customers(storage, owner)
        await storage.funnels.put(owner.id, PHOTO)
        await roll_up(storage, owner, 2 * 24 * 60 + 120)
    fingerprint = PHOTO.fingerprint(SETTINGS.dimensions)
    days = [DAY, Calendar().bucket(Period.DAY, NEXT_DAY)]

    clock = FakeClock(DAY.end + timedelta(days=30, hours=-1))  # T0's day is 30 days old
    await wired(storage, clock).jobs().apply_retention()(ApplyRetentionCommand(tenant.name))

    assert list(await storage.funnel_days.stored(tenant.id, "photo", fingerprint, days)) == [
        DAY.end
    ]
    assert len(await storage.funnel_days.stored(other.id, "photo", fingerprint, days)) == 2
