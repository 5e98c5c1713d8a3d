"""Live sessions on every store: signs of life, late data, provisional ends and the charge
corrections they cause — each applied in one atomic step, exactly once under concurrent callers."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from application.credits.deduct_credits import DeductCredits
from domain.credits import EntryKind, MeterRate, Rate, Rounding
from domain.errors import InvalidInput
from domain.events import Event, EventRejection
from domain.session import ChargeState, Closing, Exit, Session, SessionStatus
from domain.staleness import Staleness
from domain.tenants import Tenant, TenantSettings
from tests.contract.builders import add_tenant, at, stored_session, wired
from tests.contract.races import Race
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

WINDOW = timedelta(days=7)
# Two credits a minute, three an analysis.
COUNSELING = Rate("counseling", 2, Rounding.CEIL, {"analysis": MeterRate(Decimal("1"), 3)})
RATED = frozenset({"counseling"})


def event(session: Session, n: int, minutes: float, **fields: Any) -> Event:
    return Event(session.id, n, fields.pop("type", "tap"), at(minutes), **fields)


async def append(storage: Any, tenant: Tenant, now: float, *events: Event) -> Any:
    return await storage.events.append(tenant.id, list(enumerate(events)), at(now), WINDOW)


async def reaped(storage: Any, tenant: Tenant, session: Session, now: float) -> Session:
    """The session closed by the reaper at its last sign of life."""
    staleness = Staleness(default=at(now) - timedelta(minutes=5))
    closed: list[Session] = await storage.sessions.time_out_idle(
        tenant.id, staleness, 100, RATED, at(now), WINDOW
    )
    assert [s.id for s in closed] == [session.id]
    return closed[0]


def settler(storage: Any, now: float) -> DeductCredits:
    return wired(storage, FakeClock(at(now))).use_cases().deduct_credits()


async def entries_of(storage: Any, tenant: Tenant, session: Session) -> list[Any]:
    entries = await storage.ledger.entries(tenant.id, "user-1", limit=500)
    return [e for e in entries if e.session_id == session.id]


async def test_events_are_signs_of_life_never_past_now_never_back(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)

    await append(storage, tenant, 10, event(session, 1, 3), event(session, 2, 8))
    assert (await storage.sessions.get(tenant.id, session.id)).last_seen_at == at(8)

    await append(storage, tenant, 10, event(session, 3, 5))  # delivered out of order
    assert (await storage.sessions.get(tenant.id, session.id)).last_seen_at == at(8)

    await append(storage, tenant, 10, event(session, 4, 12))  # a client clock ahead of ours
    assert (await storage.sessions.get(tenant.id, session.id)).last_seen_at == at(10)


async def test_a_sign_of_life_without_data_moves_last_seen_forward_only(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)

    seen = await storage.sessions.sign_of_life(tenant.id, session.id, at(7), at(9), WINDOW)
    assert seen.last_seen_at == at(7)
    again = await storage.sessions.sign_of_life(tenant.id, session.id, at(4), at(9), WINDOW)
    assert again.last_seen_at == at(7)


async def test_a_session_sending_events_is_not_reaped(storage: Any, tenant: Tenant) -> None:
    silent = await stored_session(storage, tenant)
    talking = await stored_session(storage, tenant)
    await append(storage, tenant, 9, event(talking, 1, 9))

    staleness = Staleness(default=at(10) - timedelta(minutes=5))
    closed = await storage.sessions.time_out_idle(
        tenant.id, staleness, 100, frozenset(), at(10), WINDOW
    )

    assert [s.id for s in closed] == [silent.id]


async def test_each_kind_has_its_idle_timeout_and_the_cap_closes_any_kind(
    storage: Any, tenant: Tenant
) -> None:
    settings = TenantSettings(
        idle_timeout_seconds=300,
        idle_timeouts={"recording": None, "kiosk": 60},
        max_session_seconds=3600,
    )
    livekit = await stored_session(storage, tenant, 50, kind="livekit")
    recording = await stored_session(storage, tenant, 50, kind="recording")
    kiosk = await stored_session(storage, tenant, 57, kind="kiosk")
    webinar = await stored_session(storage, tenant, 57, kind="webinar")
    marathon = await stored_session(storage, tenant, 0, kind="recording")
    await storage.sessions.heartbeat(tenant.id, marathon.id, at(60))

    staleness = Staleness.of(settings, at(61), reconciled=False)
    closed = await storage.sessions.time_out_idle(
        tenant.id, staleness, 100, frozenset(), at(61), WINDOW
    )

    assert {s.id for s in closed} == {kiosk.id, marathon.id}
    assert {s.id for s in closed}.isdisjoint({livekit.id, recording.id, webinar.id})
    capped = next(s for s in closed if s.id == marathon.id)
    assert (capped.status, capped.ended_at) == (SessionStatus.TIMED_OUT, at(60))


async def test_a_reconciled_tenants_livekit_stays_time_out_like_other_kinds(
    storage: Any, tenant: Tenant
) -> None:
    stay = await stored_session(storage, tenant, 0, kind="livekit")

    staleness = Staleness.of(TenantSettings(), at(10), reconciled=True)
    closed = await storage.sessions.time_out_idle(
        tenant.id, staleness, 100, frozenset(), at(10), WINDOW
    )

    assert [s.id for s in closed] == [stay.id]


async def test_late_events_of_an_ended_session_count_once_however_often_resent(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    session = await stored_session(storage, tenant)
    await storage.sessions.close(
        tenant.id, session.id, Exit(at=at(10)), frozenset(), at(10), WINDOW
    )
    buffered = [
        (n - 1, event(session, n, n * 0.5, meters={"photos": 1})) for n in range(1, 21)
    ]  # all dated before the exit: a kiosk flushing its buffer

    outcomes = await race(*[lambda s: s.events.append(tenant.id, buffered, at(11), WINDOW)] * 6)

    assert sum(o.inserted for o in outcomes) == 20
    assert sum(o.duplicates for o in outcomes) == 5 * 20
    assert all(o.rejections == [] for o in outcomes)
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.event_count, stored.usage) == (20, {"photos": 20})
    assert (stored.status, stored.ended_at) == (SessionStatus.COMPLETED, at(10))


async def test_a_clients_end_is_final_and_late_data_has_a_window(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)
    await storage.sessions.close(
        tenant.id, session.id, Exit(at=at(10)), frozenset(), at(10), WINDOW
    )

    after_the_end = await append(storage, tenant, 12, event(session, 1, 11))
    late_by_a_week = await storage.events.append(
        tenant.id, [(0, event(session, 2, 9))], at(10) + WINDOW + timedelta(minutes=1), WINDOW
    )

    assert after_the_end.rejections == [EventRejection(0, "session_ended")]
    assert late_by_a_week.rejections == [EventRejection(0, "late")]
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.event_count, stored.ended_at) == (0, at(10))


async def test_an_event_after_the_reapers_end_moves_it(storage: Any, tenant: Tenant) -> None:
    session = await stored_session(storage, tenant)
    await storage.sessions.heartbeat(tenant.id, session.id, at(2))
    await reaped(storage, tenant, session, 10)

    outcome = await append(storage, tenant, 15, event(session, 1, 14), event(session, 2, 13))

    assert outcome.inserted == 2
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.status, stored.ended_at, stored.last_seen_at) == (
        SessionStatus.TIMED_OUT,
        at(14),
        at(14),
    )


async def test_the_clients_exit_replaces_the_reapers_end_once(storage: Any, tenant: Tenant) -> None:
    session = await stored_session(storage, tenant)
    await reaped(storage, tenant, session, 10)

    fixed, closing = await storage.sessions.close(
        tenant.id,
        session.id,
        Exit(at=at(7), status=SessionStatus.ABANDONED, usage={"photos": 2}),
        frozenset(),
        at(20),
        WINDOW,
    )
    again, replay = await storage.sessions.close(
        tenant.id, session.id, Exit(at=at(9)), frozenset(), at(21), WINDOW
    )

    assert closing is Closing.CORRECTED and replay is Closing.REPLAY
    for stored in (fixed, again, await storage.sessions.get(tenant.id, session.id)):
        assert (stored.status, stored.ended_at, stored.usage) == (
            SessionStatus.ABANDONED,
            at(7),
            {"photos": 2},
        )


async def test_an_exit_without_a_time_keeps_the_reapers_end_and_the_window_closes(
    storage: Any, tenant: Tenant
) -> None:
    kept = await stored_session(storage, tenant)
    too_late = await stored_session(storage, tenant)
    await storage.sessions.heartbeat(tenant.id, kept.id, at(3))
    await storage.sessions.heartbeat(tenant.id, too_late.id, at(3))
    staleness = Staleness(default=at(10) - timedelta(minutes=5))
    await storage.sessions.time_out_idle(tenant.id, staleness, 100, frozenset(), at(10), WINDOW)

    received = Exit(at=at(30), at_is_default=True)
    stored, closing = await storage.sessions.close(
        tenant.id, kept.id, received, frozenset(), at(30), WINDOW
    )
    after, replay = await storage.sessions.close(
        tenant.id, too_late.id, Exit(at=at(4)), frozenset(), at(3) + WINDOW * 2, WINDOW
    )

    assert closing is Closing.CORRECTED
    assert (stored.status, stored.ended_at) == (SessionStatus.COMPLETED, at(3))
    assert replay is Closing.REPLAY
    assert (after.status, after.ended_at) == (SessionStatus.TIMED_OUT, at(3))


async def test_concurrent_settlements_of_one_revision_write_one_entry(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    session = await stored_session(storage, tenant, kind="counseling")
    await storage.sessions.close(tenant.id, session.id, Exit(at=at(3)), RATED, at(3), WINDOW)

    charges = await race(*[lambda s: s.ledger.settle(tenant.id, session.id, 0, 6, at(4))] * 8)
    # A correction (a late analysis) moves the charge to a new revision: settled once too.
    await append(storage, tenant, 5, event(session, 1, 2, meters={"analysis": 1}))
    moved = await storage.sessions.get(tenant.id, session.id)
    adjustments = await race(
        *[lambda s: s.ledger.settle(tenant.id, session.id, moved.charge_revision, 9, at(5))] * 8
    )

    assert sum(c is not None for c in charges) == 1
    assert sum(c is not None for c in adjustments) == 1
    entries = await entries_of(storage, tenant, session)
    assert sorted((e.kind, e.amount) for e in entries) == [
        (EntryKind.ADJUSTMENT, -3),
        (EntryKind.CHARGE, -6),
    ]
    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored.charge_state is ChargeState.CHARGED and stored.charge.credits == 9


async def test_concurrent_corrections_are_each_charged_exactly_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """A reaped counseling session: its client's late analyses and its own exit arrive at once,
    each from its own process, each settling what it changed."""
    await storage.rates.put(tenant.id, COUNSELING)
    session = await stored_session(storage, tenant, kind="counseling")
    await storage.sessions.heartbeat(tenant.id, session.id, at(2))
    await reaped(storage, tenant, session, 10)
    await settler(storage, 10)(await storage.sessions.get(tenant.id, session.id))

    async def late_analysis(s: Any, n: int) -> None:
        await s.events.append(
            tenant.id, [(0, event(session, n, 3, meters={"analysis": 1}))], at(20), WINDOW
        )
        await settler(s, 20)(await s.sessions.get(tenant.id, session.id))

    async def exit(s: Any) -> None:
        stored, _ = await s.sessions.close(
            tenant.id, session.id, Exit(at=at(6)), RATED, at(20), WINDOW
        )
        await settler(s, 20)(stored)

    await race(*(lambda s, n=n: late_analysis(s, n) for n in range(1, 7)), exit)
    # Whatever a settlement lost to a correction racing it, the reaper finishes.
    for pending in await storage.sessions.pending_charges(tenant.id, 10):
        await settler(storage, 21)(pending)

    stored = await storage.sessions.get(tenant.id, session.id)
    price = 6 * 2 + 6 * 3  # 6 minutes, 6 analyses
    assert (stored.status, stored.ended_at, stored.usage) == (
        SessionStatus.COMPLETED,
        at(6),
        {"analysis": 6},
    )
    assert stored.charge_state is ChargeState.CHARGED and stored.charge.credits == price
    entries = await entries_of(storage, tenant, session)
    assert sum(e.amount for e in entries) == -price
    assert [e.kind for e in entries].count(EntryKind.CHARGE) == 1
    balance = await storage.ledger.balance(tenant.id, "user-1")
    assert (balance.consumed, balance.balance) == (price, -price)


async def test_a_cancelled_exit_of_a_reaped_charged_session_refunds_its_charge(
    storage: Any, tenant: Tenant
) -> None:
    await storage.rates.put(tenant.id, COUNSELING)
    session = await stored_session(storage, tenant, kind="counseling")
    await storage.sessions.heartbeat(tenant.id, session.id, at(4))
    await reaped(storage, tenant, session, 10)
    charged = await settler(storage, 10)(await storage.sessions.get(tenant.id, session.id))
    assert charged.charge is not None
    assert charged.charge.credits == 8

    cancelled, _ = await storage.sessions.close(
        tenant.id, session.id, Exit(at=at(4), status=SessionStatus.CANCELLED), RATED, at(11), WINDOW
    )
    settled = await settler(storage, 11)(cancelled)

    assert settled.charge is not None
    assert settled.charge.credits == 0
    entries = await entries_of(storage, tenant, session)
    assert sorted((e.kind, e.amount, e.reason) for e in entries) == [
        (EntryKind.ADJUSTMENT, 8, "counseling session corrected"),
        (EntryKind.CHARGE, -8, "counseling session"),
    ]


async def test_a_session_of_another_tenant_is_not_touched_by_a_sign_of_life(
    storage: Any, tenant: Tenant
) -> None:
    other = await add_tenant(storage, "globex")
    theirs = await stored_session(storage, other)
    with pytest.raises(Exception, match="no session"):
        await storage.sessions.sign_of_life(tenant.id, theirs.id, at(5), at(5), WINDOW)


async def test_late_data_rewinds_the_next_rollup_run_even_past_a_run_holding_the_lease(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    leases = storage.rollup_leases
    assert await leases.acquire(tenant.id, "first", at(0), at(10)) is not None
    await leases.release(tenant.id, "first", at(600), tenant.settings.rollup_cut)
    assert await leases.acquire(tenant.id, "running", at(601), at(610)) is not None

    # Late data arrives while a run holds the lease; the earliest rewind wins.
    await race(*(lambda s, m=m: s.rollup_leases.rewind(tenant.id, at(m)) for m in (300, 120, 240)))
    await leases.release(tenant.id, "running", at(660), tenant.settings.rollup_cut)
    after = await leases.acquire(tenant.id, "next", at(661), at(670))
    await leases.release(tenant.id, "next", at(720), tenant.settings.rollup_cut)
    then = await leases.acquire(tenant.id, "then", at(721), at(730))

    assert after is not None and after.resume_from == at(120)
    assert then is not None and then.resume_from == at(720)  # a rewind is taken once


async def test_a_tenant_never_rolled_up_is_rewound_to_its_earliest_rewind(
    storage: Any, tenant: Tenant
) -> None:
    """Data older than the tenant, sent before its first run: that run is told where it is."""
    await storage.rollup_leases.rewind(tenant.id, at(5))
    await storage.rollup_leases.rewind(tenant.id, at(3))
    await storage.rollup_leases.rewind(tenant.id, at(4))

    lease = await storage.rollup_leases.acquire(tenant.id, "first", at(10), at(20))
    assert lease is not None and lease.resume_from == at(3)
    await storage.rollup_leases.release(tenant.id, "first", at(60), "UTC")
    again = await storage.rollup_leases.acquire(tenant.id, "second", at(70), at(80))
    assert again is not None and again.resume_from == at(60)  # the rewind was taken


async def test_a_tenant_never_rolled_up_nor_rewound_has_no_resume_point(
    storage: Any, tenant: Tenant
) -> None:
    lease = await storage.rollup_leases.acquire(tenant.id, "first", at(10), at(20))

    assert lease is not None and lease.resume_from is None


async def test_a_meters_total_stays_below_a_billion_whatever_adds_to_it(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)
    nearly = Decimal("999999999.5")
    await append(storage, tenant, 5, event(session, 1, 1, meters={"bytes": nearly}))

    outcome = await append(
        storage,
        tenant,
        5,
        event(session, 2, 2, meters={"bytes": 1}),
        event(session, 3, 3, meters={"photos": 1}),
    )
    with pytest.raises(InvalidInput) as refused:
        await storage.sessions.close(
            tenant.id, session.id, Exit(at=at(4), usage={"bytes": 1}), frozenset(), at(5), WINDOW
        )

    assert [r.index for r in outcome.rejections] == [0]
    assert outcome.rejections[0].error.startswith("validation_error: meters.bytes")
    assert refused.value.field == "usage.bytes"
    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored.usage == {"bytes": nearly, "photos": 1} and stored.is_active
