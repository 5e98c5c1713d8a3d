"""A hostile review of three fixes of 2026-12-04: a LiveKit track's seconds leave an ended stay
to be settled again in the track's own step (4605364), a duplicate counts towards no meter
limit (6a3e427), a join handled again looks at its room's end (f879498). Each test states the
guarantee of API.md / DESIGN.md it holds the stores to."""

import threading
from decimal import Decimal
from typing import Any

import pytest

from application.livekit.receive_livekit_webhook import ReceiveLiveKitWebhookCommand
from application.sessions.reap_stale_sessions import ReapStaleSessionsCommand
from application.sessions.record_exit import RecordExitCommand
from domain.credits import MeterRate, Rate
from domain.events import Event
from domain.livekit import LiveKitAccount, session_id_of
from domain.session import END_CHANGES, ChargeState, SessionStatus
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, ChargesApart, add_tenant, at, stored_session, wired
from tests.contract.races import Pause, Race, after
from tests.contract.test_lifecycle_fast_path_review import DiesAtSettle, PausedWrite
from tests.contract.test_mongodb_specifics import dying_append  # noqa: F401 (a fixture)
from tests.fakes import FakeClock
from tests.livekit_server import LiveKitServer

pytestmark = pytest.mark.anyio

# 1 credit a minute of stay, 2 a minute of camera (DESIGN.md: charged once, corrected once).
RATE = Rate("livekit", 1, meter_rates={"video.seconds": MeterRate(Decimal(60), 2)})
WEBHOOK_CLOCK = FakeClock(at(90))


def stamped(minutes: float) -> Any:
    return at(minutes).replace(microsecond=0)


def receive(storage: Any, webhook: tuple[str, dict[str, str]], **ports: Any) -> Any:
    body, headers = webhook
    handle = wired(storage, WEBHOOK_CLOCK, **ports).use_cases().receive_livekit_webhook()
    return handle(ReceiveLiveKitWebhookCommand(body, headers["Authorization"]))


async def deliver(storage: Any, webhook: tuple[str, dict[str, str]], **ports: Any) -> Any:
    return await receive(storage, webhook, **ports)


async def reap(storage: Any, minute: float = 95) -> Any:
    jobs = wired(storage, FakeClock(at(minute))).jobs()
    return await jobs.reap_stale_sessions()(ReapStaleSessionsCommand())


async def a_server(storage: Any, tenant: Tenant, rated: bool = True) -> LiveKitServer:
    server = LiveKitServer()
    await storage.livekit_accounts.add(LiveKitAccount(server.key, tenant.id, server.secret, None))
    if rated:
        await storage.rates.put(tenant.id, RATE)
    return server


def stay_of(server: LiveKitServer, identity: str = "ana") -> str:
    return session_id_of(server.room["sid"], f"PA_{identity}")


async def entries(storage: Any, tenant: Tenant, session_id: str, subject: str = "ana") -> list[Any]:
    found = await storage.ledger.entries(tenant.id, subject, limit=100)
    return [e for e in found if e.session_id == session_id]


async def books_of(storage: Any, tenant: Tenant, stay_id: str) -> tuple[Any, int, list[Any]]:
    """The stored stay, its charge, its entries: the charge is what the ledger holds for it, one
    entry per revision at most (DESIGN.md: exactly once per change)."""
    stay = await storage.sessions.get(tenant.id, stay_id)
    written = await entries(storage, tenant, stay_id)
    assert stay.charge_state is ChargeState.CHARGED, stay
    assert stay.charge is not None
    assert -sum(e.amount for e in written) == stay.charge.credits
    assert len({e.session_revision for e in written}) == len(written), written
    return stay, stay.charge.credits, written


async def charged_stay_with_cameras(storage: Any, tenant: Tenant, cameras: int) -> Any:
    """Ana's stay 0..11 with `cameras` camera tracks published at 1 whose unpublish never came
    before her `left` (they ended with it: 10 minutes each), charged."""
    server = await a_server(storage, tenant)
    await deliver(storage, server.joined("ana", stamped(0)))
    for n in range(1, cameras + 1):
        track = server.track("track_published", "ana", stamped(0), f"TR_{n}", "CAMERA", stamped(1))
        await deliver(storage, track)
    await deliver(storage, server.left("ana", stamped(0), stamped(11)))
    stay = await storage.sessions.get(tenant.id, stay_of(server))
    assert stay.charge is not None and stay.charge.credits == 11 + 20 * cameras
    return server


def unpublish(server: LiveKitServer, sid: str, minute: float) -> tuple[str, dict[str, str]]:
    return server.track("track_unpublished", "ana", stamped(0), sid, "CAMERA", stamped(minute))


# --- 4605364: a track's seconds and the stay's new price in one step -------------------------


@pytest.mark.parametrize("attempt", range(3))
async def test_late_unpublishes_of_two_tracks_at_once_settle_a_charged_stay_at_its_exact_price(
    storage: Any, tenant: Tenant, race: Race, attempt: int
) -> None:
    """Charged 11 + 2 x 20 = 51 (two cameras ended with the stay at 11); both unpublishes (at 6
    and at 4) arrive at once: 5 + 3 camera minutes, 11 + 16 = 27. Two corrections racing: each
    moves the revision in its own step, the ledger ends at exactly the new price."""
    server = await charged_stay_with_cameras(storage, tenant, 2)
    first, second = unpublish(server, "TR_1", 6), unpublish(server, "TR_2", 4)

    # With the reaper settling pending stays at the same time.
    await race(lambda s: deliver(s, first), lambda s: deliver(s, second), lambda s: reap(s))
    await reap(storage)  # what a lost claim left pending (the reaper settles it)

    stay, credits, _written = await books_of(storage, tenant, stay_of(server))
    assert stay.usage == {"video.seconds": 300 + 180}
    assert credits == 27
    assert stay.charge_revision >= 1
    assert await storage.sessions.pending_charges(tenant.id, 10) == []


async def test_a_late_unpublish_and_the_reapers_settlement_at_once_charge_the_new_price_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """The stay's exit died before its charge (left pending at 31); the reaper settles pending
    stays while the late unpublish (at 6) lands: whoever claims first, the books end at 21."""
    server = await a_server(storage, tenant)
    await deliver(storage, server.joined("ana", stamped(0)))
    await deliver(
        storage, server.track("track_published", "ana", stamped(0), "TR_1", "CAMERA", stamped(1))
    )
    with pytest.raises(ConnectionError):
        await deliver(
            storage,
            server.left("ana", stamped(0), stamped(11)),
            ledger=DiesAtSettle(storage.ledger),
            sessions=ChargesApart(storage.sessions),
        )
    pending = await storage.sessions.get(tenant.id, stay_of(server))
    assert pending.charge_state is ChargeState.PENDING

    late = unpublish(server, "TR_1", 6)
    await race(lambda s: reap(s), lambda s: deliver(s, late))
    await reap(storage)

    stay, credits, _ = await books_of(storage, tenant, stay_of(server))
    assert (stay.usage, credits) == ({"video.seconds": 300}, 21)


async def test_an_exits_settlement_held_while_a_late_unpublish_corrects_the_stay_loses_its_claim(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Forced: the `left` closes the stay (10 camera minutes, 31) and stops before its charge;
    the unpublish at 6 runs whole (track step, new revision, settlement at 21); then the left's
    settlement of the old revision resumes. It must not write 31 on top (DESIGN.md: a charge
    is a conditional update on the revision)."""
    server = await a_server(storage, tenant)
    await deliver(storage, server.joined("ana", stamped(0)))
    await deliver(
        storage, server.track("track_published", "ana", stamped(0), "TR_1", "CAMERA", stamped(1))
    )
    reached, go = threading.Event(), threading.Event()
    left = server.left("ana", stamped(0), stamped(11))
    late = unpublish(server, "TR_1", 6)

    await race(
        lambda s: deliver(
            s,
            left,
            ledger=Pause(s.ledger, "settle", reached, go),
            sessions=ChargesApart(s.sessions),
        ),
        after(reached, go, lambda s: deliver(s, late)),
    )
    await reap(storage)

    stay, credits, _ = await books_of(storage, tenant, stay_of(server))
    assert (stay.usage, credits) == ({"video.seconds": 300}, 21)


async def a_camera_on_until_its_left(
    storage: Any, tenant: Tenant
) -> tuple[LiveKitServer, Any, Any]:
    """Ana joins (0) and publishes a camera (1): her stay's server, and the two webhooks still to
    come, her `left` at 11 and the camera's own unpublish at 6."""
    server = await a_server(storage, tenant)
    await deliver(storage, server.joined("ana", stamped(0)))
    await deliver(
        storage, server.track("track_published", "ana", stamped(0), "TR_1", "CAMERA", stamped(1))
    )
    return server, server.left("ana", stamped(0), stamped(11)), unpublish(server, "TR_1", 6)


@pytest.mark.parametrize("attempt", range(3))
async def test_a_late_unpublish_and_the_stays_left_at_once_price_the_stay_once(
    storage: Any, tenant: Tenant, race: Race, attempt: int
) -> None:
    """The exit (the `left` at 11, which ends the open camera with the stay) reads the stay
    while the camera's own unpublish (at 6) counts its seconds: whichever wins, the stay is
    charged for 5 camera minutes (21), once; an exit that read the stay before the seconds
    must notice them (PostgreSQL: the track step writes the session's row)."""
    server, left, late = await a_camera_on_until_its_left(storage, tenant)

    await race(lambda s: deliver(s, left), lambda s: deliver(s, late))
    await reap(storage)

    stay, credits, _ = await books_of(storage, tenant, stay_of(server))
    assert stay.status is SessionStatus.COMPLETED and stay.ended_at == stamped(11)
    assert (stay.usage, credits) == ({"video.seconds": 300}, 21)


async def test_a_late_unpublish_on_a_stay_without_a_rate_leaves_it_not_charged(
    storage: Any, tenant: Tenant
) -> None:
    """No rate for kind livekit: the stay ends not_charged, and a track's seconds after it must
    not make it pending (settled_again_on_usage: charged or pending only)."""
    server = await a_server(storage, tenant, rated=False)
    await deliver(storage, server.joined("ana", stamped(0)))
    await deliver(
        storage, server.track("track_published", "ana", stamped(0), "TR_1", "CAMERA", stamped(1))
    )
    await deliver(storage, server.left("ana", stamped(0), stamped(11)))
    before = await storage.sessions.get(tenant.id, stay_of(server))
    assert before.charge_state is ChargeState.NOT_CHARGED

    await deliver(storage, unpublish(server, "TR_1", 6))
    await reap(storage)

    stay = await storage.sessions.get(tenant.id, stay_of(server))
    assert stay.usage == {"video.seconds": 300}
    assert (stay.charge_state, stay.charge_revision, stay.charge) == (
        ChargeState.NOT_CHARGED,
        before.charge_revision,
        None,
    )
    assert await storage.sessions.pending_charges(tenant.id, 10) == []
    assert await entries(storage, tenant, stay.id) == []


async def test_a_track_report_changing_no_seconds_leaves_a_charged_stay_alone(
    storage: Any, tenant: Tenant
) -> None:
    """A track_published redelivered under a new id (LiveKit's retry) on a charged stay adds
    no seconds: no new revision, no entry (DESIGN.md: one adjustment per change of price)."""
    server = await charged_stay_with_cameras(storage, tenant, 1)
    before = await storage.sessions.get(tenant.id, stay_of(server))

    again = server.track("track_published", "ana", stamped(0), "TR_1", "CAMERA", stamped(1))
    await deliver(storage, again)

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    assert (stay.charge_revision, credits, len(written)) == (before.charge_revision, 31, 1)


# --- 6a3e427: a duplicate counts towards no meter limit --------------------------------------


def metered(session: Any, n: int, meters: dict[str, Any], minute: float | None = None) -> Event:
    return Event(session.id, n, "tap", at(n if minute is None else minute), meters=meters)


async def test_a_resent_batch_over_several_sessions_sorts_each_on_its_own(
    storage: Any, tenant: Tenant
) -> None:
    """API.md: a stored (session_id, sequence_no) is a duplicate and adds nothing. One batch:
    session A's stored event 1 (600M) again, A's new 2 (300M: fits without the duplicate), A's
    new 3 (200M: 1.1e9, truly over the limit), B's new 1, an unknown session's event, ended
    session C's stored 1 again and its new 9 dated after its client's end (session_ended)."""
    a = await stored_session(storage, tenant)
    b = await stored_session(storage, tenant)
    c = await stored_session(storage, tenant)
    a1 = metered(a, 1, {"bytes": 600_000_000})
    c1 = metered(c, 1, {"bytes": 5})
    await storage.events.append(tenant.id, [(0, a1), (1, c1)], NOW, OPEN)
    exit_c = RecordExitCommand(tenant.id, c.id, at=at(5))
    await wired(storage, FakeClock(at(60))).use_cases().record_exit()(exit_c)
    ghost = Event("3d1f0c55-0000-4000-8000-000000000000", 1, "tap", at(1), meters={"bytes": 1})

    batch = [
        a1,
        metered(a, 2, {"bytes": 300_000_000}),
        metered(b, 1, {"bytes": 700_000_000}),
        metered(a, 3, {"bytes": 200_000_000}),
        ghost,
        c1,
        metered(c, 9, {"bytes": 1}),
    ]
    outcome = await storage.events.append(tenant.id, list(enumerate(batch)), NOW, OPEN)

    assert outcome.inserted == 2  # A's 2, B's 1
    assert outcome.duplicates == 2  # A's 1, C's 1
    assert [r.index for r in outcome.rejections] == [3, 4, 6]
    assert outcome.rejections[0].error.startswith("validation_error: meters.bytes")
    assert outcome.rejections[1].error == "session_not_found"
    assert outcome.rejections[2].error == "session_ended"
    stored_a = await storage.sessions.get(tenant.id, a.id)
    assert (stored_a.usage, stored_a.event_count) == ({"bytes": 900_000_000}, 2)
    stored_b = await storage.sessions.get(tenant.id, b.id)
    assert stored_b.usage == {"bytes": 700_000_000}
    stored_c = await storage.sessions.get(tenant.id, c.id)
    assert (stored_c.usage, stored_c.event_count) == ({"bytes": 5}, 1)


async def test_a_batch_at_the_limit_with_nothing_stored_before_is_refused_as_before(
    storage: Any, tenant: Tenant
) -> None:
    """The look-up finds nothing stored: the batch is sorted as it was (its 2nd event, 1e9 in
    all, refused; the 3rd, which fits after it, taken)."""
    a = await stored_session(storage, tenant)
    batch = [
        metered(a, 1, {"bytes": 600_000_000}),
        metered(a, 2, {"bytes": 400_000_000}),
        metered(a, 3, {"bytes": 300_000_000}),
    ]
    outcome = await storage.events.append(tenant.id, list(enumerate(batch)), NOW, OPEN)
    assert (outcome.inserted, outcome.duplicates) == (2, 0)
    assert [r.index for r in outcome.rejections] == [1]
    stored = await storage.sessions.get(tenant.id, a.id)
    assert (stored.usage, stored.event_count) == ({"bytes": 900_000_000}, 2)


async def test_copies_of_a_resent_batch_at_once_store_each_event_once_within_the_limit(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Event 1 (500M) stored; three copies of [1, 2 (300M), 3 (150M)] at once: 950M fits, so
    nothing is refused by any copy, and each event is stored and counted once."""
    a = await stored_session(storage, tenant)
    first = metered(a, 1, {"bytes": 500_000_000})
    await storage.events.append(tenant.id, [(0, first)], NOW, OPEN)
    batch = list(
        enumerate(
            [first, metered(a, 2, {"bytes": 300_000_000}), metered(a, 3, {"bytes": 150_000_000})]
        )
    )

    outcomes = await race(*(lambda s: s.events.append(tenant.id, batch, NOW, OPEN),) * 3)

    assert [o.rejections for o in outcomes] == [[], [], []]
    assert sum(o.inserted for o in outcomes) == 2
    assert sum(o.duplicates for o in outcomes) == 3 * 3 - 2
    stored = await storage.sessions.get(tenant.id, a.id)
    assert (stored.usage, stored.event_count) == ({"bytes": 950_000_000}, 3)


# --- f879498: a join handled again looks at its room's end -----------------------------------


def snapshot(stay: Any) -> tuple[Any, ...]:
    return (
        stay.status,
        stay.ended_at,
        stay.exit_reason,
        stay.usage,
        stay.charge_state,
        stay.charge_revision,
        None if stay.charge is None else stay.charge.credits,
    )


async def test_a_join_redelivered_after_its_left_and_the_rooms_end_changes_nothing(
    storage: Any, tenant: Tenant
) -> None:
    """Ana joins (0), publishes a camera (1), leaves (5); the room finishes (20). The join is
    redelivered: the stay keeps its own end (a client's end is final), no entry is added
    (DESIGN.md: a replay returns the original result)."""
    server = await a_server(storage, tenant)
    join = server.joined("ana", stamped(0))
    await deliver(storage, join)
    await deliver(
        storage, server.track("track_published", "ana", stamped(0), "TR_1", "CAMERA", stamped(1))
    )
    await deliver(storage, server.left("ana", stamped(0), stamped(5)))
    await deliver(storage, server.webhook("room_finished", stamped(20)))
    before = await storage.sessions.get(tenant.id, stay_of(server))
    written = await entries(storage, tenant, before.id)

    received = await deliver(storage, join)

    after_ = await storage.sessions.get(tenant.id, stay_of(server))
    assert received.redelivered and not received.started
    assert snapshot(after_) == snapshot(before)
    assert after_.ended_at == stamped(5) and after_.usage == {"video.seconds": 240}
    assert await entries(storage, tenant, before.id) == written


async def test_a_join_of_a_room_that_never_finished_sent_twice_changes_nothing(
    storage: Any, tenant: Tenant
) -> None:
    server = await a_server(storage, tenant)
    join = server.joined("ana", stamped(0))
    await deliver(storage, join)
    await deliver(
        storage, server.track("track_published", "ana", stamped(0), "TR_1", "CAMERA", stamped(1))
    )
    before = await storage.sessions.get(tenant.id, stay_of(server))

    again = await deliver(storage, join)
    other = await deliver(storage, server.joined("ana", stamped(0)))  # a new id, same stay

    stay = await storage.sessions.get(tenant.id, stay_of(server))
    assert (again.started, other.started, again.ended, other.ended) == (False, False, (), ())
    assert stay.is_active and snapshot(stay) == snapshot(before)
    assert stay.last_seen_at == before.last_seen_at


async def test_a_join_redelivered_after_the_reaper_and_the_rooms_end_changes_nothing(
    storage: Any,
) -> None:
    """Ana joins (0) and publishes a camera (3); nothing more comes, and the reaper (idle
    timeout 60 s for livekit) ends her stay at 3 and charges it. room_finished (20) then ends
    no stay (it ends only open ones). LiveKit redelivers the join: DESIGN.md "Idempotency
    everywhere a client retries: … webhook ids. A replay returns the original result", and
    ReceiveLiveKitWebhook: "a redelivered webhook is handled again and changes nothing". The
    stay must be as the room_finished left it; the handling of the same webhook twice must
    not move the end from 3 to 20 (17 more minutes) and add an adjustment."""
    tenant = await add_tenant(storage, "lk", idle_timeouts={"livekit": 60})
    server = await a_server(storage, tenant)
    join = server.joined("ana", stamped(0))
    await deliver(storage, join)
    await deliver(
        storage, server.track("track_published", "ana", stamped(0), "TR_1", "CAMERA", stamped(3))
    )
    await reap(storage)
    reaped = await storage.sessions.get(tenant.id, stay_of(server))
    assert (reaped.status, reaped.ended_at) == (SessionStatus.TIMED_OUT, stamped(3))
    await deliver(storage, server.webhook("room_finished", stamped(20)))
    before = await storage.sessions.get(tenant.id, stay_of(server))
    written = await entries(storage, tenant, before.id)
    assert snapshot(before) == snapshot(reaped)  # room_finished left the reaped stay alone

    received = await deliver(storage, join)  # redelivered

    stay = await storage.sessions.get(tenant.id, stay_of(server))
    assert received.redelivered
    assert (stay.status, stay.ended_at, stay.exit_reason) == (
        SessionStatus.TIMED_OUT,
        stamped(3),
        None,
    )
    # The camera the reaper's end left open ends with the stay, at 3 (0 s): the price stands.
    assert stay.usage.get("video.seconds", 0) == 0
    assert (stay.charge_state, stay.charge.credits) == (ChargeState.CHARGED, before.charge.credits)
    assert await entries(storage, tenant, before.id) == written


async def test_held_an_exits_write_while_a_late_unpublish_shortens_the_camera_prices_it_anew(
    storage: Any, storage_url: str, tenant: Tenant, race: Race
) -> None:
    """Forced (PostgreSQL, MongoDB): the `left` at 11 ends the open camera with the stay (600 s),
    reads the stay for its exit, and stops before its optimistic write; the camera's own
    unpublish at 6 runs whole meanwhile (-300 s, the stay still active, so nothing to settle).
    The exit's write must notice the seconds (PostgreSQL: SAVE_TRACK wrote the session's row) and
    charge 21, not the 31 it read."""
    server, left, late = await a_camera_on_until_its_left(storage, tenant)

    with PausedWrite(storage_url, END_CHANGES) as paused:
        await race(
            lambda s: deliver(s, left),
            after(paused.reached, paused.go, lambda s: deliver(s, late)),
        )
    await reap(storage)

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    assert (stay.usage, credits) == ({"video.seconds": 300}, 21)
    assert len(written) == 1  # charged once at its price, never corrected from a wrong one


@pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)
@pytest.mark.usefixtures("dying_append")
async def test_a_retry_at_the_limit_of_a_batch_a_dead_append_stored_counts_what_it_stored(
    storage: Any, tenant: Tenant
) -> None:
    """MongoDB: event 1 (600M bytes) was stored by an append that died before counting it. The
    client retries with event 2 (600M more): event 1 is stored, so it is a duplicate (API.md:
    stored, adds nothing more) and counts; event 2 would bring the total to 1.2e9, past the
    limit, so it is refused. The retry must finish the dead append's counting (event_counting:
    "a retried batch" completes it), and no later finisher may delete event 1 for a limit that
    event 2, taken in its place, reached."""
    session = await stored_session(storage, tenant)
    first = metered(session, 1, {"bytes": 600_000_000})
    with pytest.raises(ConnectionError):
        await storage.events.append(tenant.id, [(0, first)], NOW, OPEN)

    second = metered(session, 2, {"bytes": 600_000_000})
    outcome = await storage.events.append(tenant.id, [(0, first), (1, second)], NOW, OPEN)
    right_after = await storage.sessions.get(tenant.id, session.id)
    # Whatever finishes a dead append later (the exit here) decides nothing differently.
    await (
        wired(storage, FakeClock(at(60)))
        .use_cases()
        .record_exit()(RecordExitCommand(tenant.id, session.id, at=at(5)))
    )
    stored = await storage.sessions.get(tenant.id, session.id)
    kept = [e.sequence_no for e in await storage.events.find(tenant.id, session.id, 10)]

    seen = (outcome, right_after.usage, right_after.event_count, stored.usage, kept)
    assert (outcome.inserted, outcome.duplicates) == (0, 1), seen
    assert [r.index for r in outcome.rejections] == [1], seen
    assert (right_after.usage, right_after.event_count) == ({"bytes": 600_000_000}, 1), seen
    assert kept == [1], seen
    assert stored.usage == {"bytes": 600_000_000}, seen


async def test_a_late_unpublish_on_a_charged_stay_of_an_erased_subject_corrects_its_books(
    storage: Any, tenant: Tenant
) -> None:
    """Ana's stay charged 31 (camera ended with it at 11); Ana is erased (her books move to a
    pseudonym, API.md: the books still balance); then the camera's unpublish at 6 arrives: the
    stay is 21, its adjustment written once, under the pseudonym."""
    from application.data_rights.erase_subject import EraseSubjectCommand

    server = await charged_stay_with_cameras(storage, tenant, 1)
    erasing = wired(storage, FakeClock(at(80))).use_cases().erase_subject()
    await erasing(EraseSubjectCommand(tenant, "ana"))
    erased = await storage.sessions.get(tenant.id, stay_of(server))
    assert erased.subject_id != "ana"

    await deliver(storage, unpublish(server, "TR_1", 6))
    await reap(storage)

    stay = await storage.sessions.get(tenant.id, stay_of(server))
    written = await entries(storage, tenant, stay.id, subject=erased.subject_id)
    assert stay.usage == {"video.seconds": 300}
    assert (stay.charge_state, stay.charge.credits if stay.charge else None) == (
        ChargeState.CHARGED,
        21,
    )
    assert -sum(e.amount for e in written) == 21
    assert len({e.session_revision for e in written}) == len(written)
    assert await entries(storage, tenant, stay.id, subject="ana") == []
