"""A hostile review of the lifecycle's fast paths (statements sent to asyncpg / sqlite3 directly,
optimistic row versions): starts of one client-chosen id, exits, heartbeats and the reaper racing
each other, and a LiveKit stay's webhooks redelivered at once. Each test states the guarantee of
API.md / DESIGN.md it holds the stores to."""

import threading
from decimal import Decimal
from typing import Any
from unittest.mock import patch

import pytest

import adapters.sqlalchemy.asyncpg_sessions
from adapters.mongodb.sessions import MongoSessionRepository
from adapters.sqlalchemy.session_rows import SETTLED_COLUMNS
from application.events.ingest_events import IngestEventsCommand
from application.livekit.receive_livekit_webhook import ReceiveLiveKitWebhookCommand
from application.sessions.reap_stale_sessions import ReapStaleSessionsCommand
from application.sessions.record_exit import RecordExitCommand
from application.sessions.record_heartbeat import RecordHeartbeatCommand
from application.sessions.start_session import StartSessionCommand
from domain.credits import EntryKind, MeterRate, Rate, Rounding
from domain.errors import Conflict, InvalidInput
from domain.events import Event
from domain.livekit import LiveKitAccount, session_id_of
from domain.plans import Plan, PlanLimits
from domain.session import END_CHANGES, LIFE_CHANGES, ChargeState, SessionRequest, SessionStatus
from domain.tenants import Tenant
from tests.contract.builders import ChargesApart, a_grant, at, stored_session, wired
from tests.contract.races import Call, Proxy, Race, after, wait_for
from tests.fakes import FakeClock
from tests.livekit_server import LiveKitServer

pytestmark = pytest.mark.anyio

COUNSELING = Rate("counseling", 2, Rounding.CEIL, {"analysis": MeterRate(Decimal("1"), 3)})
CLOCK = FakeClock(at(60))
SESSION_ID = "0b7c6a1e-4f0e-4d6b-9d2a-5a3f1c2e7d11"


def price(minutes: int, analyses: int) -> int:
    return 2 * minutes + 3 * analyses


async def rated_session_of_ana(storage: Any, tenant: Tenant, balance: int = 100) -> Any:
    await storage.rates.put(tenant.id, COUNSELING)
    await storage.ledger.grant(a_grant(tenant, balance, "g-1", "ana"))
    return await stored_session(storage, tenant, kind="counseling", subject_id="ana")


async def entries_of(storage: Any, tenant: Tenant, session_id: str) -> list[Any]:
    entries = await storage.ledger.entries(tenant.id, "ana", limit=100)
    return [e for e in entries if e.session_id == session_id]


async def settle_what_is_pending(storage: Any, tenant: Tenant) -> None:
    for pending in await storage.sessions.pending_charges(tenant.id, 100):
        await wired(storage, CLOCK).use_cases().deduct_credits()(pending)


async def books_balance(storage: Any, tenant: Tenant, session_id: str) -> tuple[Any, ...]:
    """The stored session's charge against its ledger entries and the subject's balance."""
    stored = await storage.sessions.get(tenant.id, session_id)
    entries = await entries_of(storage, tenant, session_id)
    balance = (await storage.ledger.balance(tenant.id, "ana")).balance
    assert stored.charge is not None, stored
    assert stored.charge_state is ChargeState.CHARGED
    # balance = sum of the ledger; the session's total is what the ledger holds for it
    assert -sum(e.amount for e in entries) == stored.charge.credits
    assert len({(e.session_revision, e.kind) for e in entries}) == len(entries)
    return stored, entries, balance


def exit_of(tenant: Tenant, session_id: str, minute: float, **fields: Any) -> Call:
    command = RecordExitCommand(tenant.id, session_id, at=at(minute), **fields)
    return lambda s: wired(s, CLOCK).use_cases().record_exit()(command)


def reaper(clock: FakeClock = CLOCK) -> Call:
    async def reap(s: Any) -> Any:
        return await wired(s, clock).jobs().reap_stale_sessions()(ReapStaleSessionsCommand())

    return reap


# 1. One client-chosen id started by several callers at once


def starts(tenant: Tenant, request: SessionRequest) -> Call:
    command = StartSessionCommand(tenant.id, request, session_id=SESSION_ID)
    return lambda s: wired(s, CLOCK).use_cases().start_session()(command)


async def test_one_client_id_started_by_eight_callers_at_once_is_one_session_and_seven_replays(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """API.md: same id again with the same content → 200 with the stored session; never two rows,
    never an error."""
    request = SessionRequest(kind="webinar", resource_id="w-1", subject_id="ana")

    outcomes = await race(*[starts(tenant, request)] * 8, return_exceptions=True)

    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert errors == []
    assert sorted(o.created for o in outcomes) == [False] * 7 + [True]
    assert len({(o.session.id, o.session.started_at) for o in outcomes}) == 1
    assert await storage.sessions.existing(tenant.id, [SESSION_ID]) == {SESSION_ID}


async def test_one_client_id_under_a_plan_limit_started_at_once_takes_one_slot(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """The limited start (its own path, not the fast insert): the same id eight times at once
    with one slot left is one session and seven replays, never a trial_exhausted."""
    limits = PlanLimits(sessions_per_resource=1, session_kinds=frozenset({"practice"}))
    await storage.plans.put(tenant.id, Plan("free", default=True, limits=limits))
    request = SessionRequest(kind="practice", resource_id="pdf-1", subject_id="ana")

    outcomes = await race(*[starts(tenant, request)] * 8, return_exceptions=True)

    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    assert sorted(o.created for o in outcomes) == [False] * 7 + [True]
    count = await storage.sessions.count_started(tenant.id, "ana", "pdf-1", frozenset({"practice"}))
    assert count == 1


async def test_one_client_id_started_at_once_with_two_contents_stores_one_and_refuses_the_other(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """API.md: same id with different content → 409 conflict; the first content wins."""
    first = SessionRequest(kind="webinar", resource_id="w-1", subject_id="ana")
    other = SessionRequest(kind="webinar", resource_id="w-2", subject_id="ana")

    outcomes = await race(*[starts(tenant, r) for r in (first, other) * 4], return_exceptions=True)

    unexpected = [
        o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, Conflict)
    ]
    assert unexpected == []
    stored = await storage.sessions.get(tenant.id, SESSION_ID)
    won = first if stored.resource_id == "w-1" else other
    for request, outcome in zip((first, other) * 4, outcomes, strict=True):
        if request == won:
            assert not isinstance(outcome, BaseException)
            assert outcome.session.resource_id == won.resource_id
        else:
            assert isinstance(outcome, Conflict)
    assert sum(not isinstance(o, BaseException) and o.created for o in outcomes) == 1


# 2. Exits of one rated session at once, and retried


async def test_exits_that_differ_sent_at_once_answer_one_end_and_one_charge(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """DESIGN.md: exactly one caller closes; every other exit is a replay. API.md: a second
    exit (concurrent) answers the same ended_at, duration_seconds and charge; nothing is charged
    twice; usage of a replay is not added."""
    session = await rated_session_of_ana(storage, tenant)
    calls = [
        exit_of(tenant, session.id, minute, status=status, usage={"analysis": 1})
        for minute, status in zip((3, 4, 5, 6, 7, 8), ("completed", "abandoned") * 3, strict=True)
    ]

    answers = await race(*calls)

    assert sum(a.closed for a in answers) == 1
    winner = next(a for a in answers if a.closed).session
    seen = {
        (a.session.status, a.session.ended_at, a.session.duration_seconds, a.session.charge)
        for a in answers
    }
    assert seen == {(winner.status, winner.ended_at, winner.duration_seconds, winner.charge)}
    await settle_what_is_pending(storage, tenant)
    stored, entries, balance = await books_balance(storage, tenant, session.id)
    minutes = int((stored.ended_at - stored.started_at).total_seconds() // 60)
    assert stored.usage == {"analysis": 1}
    assert [(e.kind, e.amount) for e in entries] == [(EntryKind.CHARGE, -price(minutes, 1))]
    assert stored.charge.balance_after == balance == 100 - price(minutes, 1)


async def test_a_cancel_and_a_completion_sent_at_once_end_it_one_way_charged_that_way(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """API.md: cancelled is never charged; completed is. Whichever exit closes decides, and
    every answer is that one (the other a replay)."""
    session = await rated_session_of_ana(storage, tenant)
    calls = [exit_of(tenant, session.id, 4, status=s) for s in ("cancelled", "completed") * 4]

    answers = await race(*calls)
    await settle_what_is_pending(storage, tenant)

    assert sum(a.closed for a in answers) == 1
    assert len({(a.session.status, a.session.charge_state, a.session.charge) for a in answers}) == 1
    stored = await storage.sessions.get(tenant.id, session.id)
    entries = await entries_of(storage, tenant, session.id)
    if stored.status is SessionStatus.CANCELLED:
        assert (stored.charge_state, stored.charge, entries) == (ChargeState.NOT_CHARGED, None, [])
    else:
        assert stored.charge is not None
        assert [e.amount for e in entries] == [-price(4, 0)] == [-stored.charge.credits]


async def test_exits_retried_after_a_success_answer_it_again_and_charge_nothing_more(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    session = await rated_session_of_ana(storage, tenant)
    first = await exit_of(tenant, session.id, 3, usage={"analysis": 1})(storage)

    retries = await race(
        *(
            exit_of(tenant, session.id, m, status=s, usage={"analysis": 2})
            for m, s in ((3, "completed"), (9, "abandoned"), (12, "cancelled"), (1, "failed"))
        )
    )

    assert not any(r.closed for r in retries)
    assert {(r.session.ended_at, r.session.status, r.session.charge) for r in retries} == {
        (first.session.ended_at, first.session.status, first.session.charge)
    }
    stored, entries, balance = await books_balance(storage, tenant, session.id)
    assert stored.usage == {"analysis": 1}
    assert (len(entries), balance) == (1, 100 - price(3, 1))


async def test_an_exit_before_the_start_or_too_far_ahead_changes_nothing_and_a_good_one_closes(
    storage: Any, tenant: Tenant
) -> None:
    """API.md: exit before started_at → 422 (the session stays open, no usage, no charge);
    timestamps more than 5 minutes ahead → 422."""
    session = await rated_session_of_ana(storage, tenant)  # started at minute 0
    clock = FakeClock(at(10))
    record_exit = wired(storage, clock).use_cases().record_exit()

    for when in (at(-1), at(16)):
        with pytest.raises(InvalidInput):
            await record_exit(
                RecordExitCommand(tenant.id, session.id, at=when, usage={"analysis": 5})
            )
        stored = await storage.sessions.get(tenant.id, session.id)
        assert (stored.status, stored.ended_at, stored.usage, stored.charge_state) == (
            SessionStatus.ACTIVE,
            None,
            {},
            ChargeState.NONE,
        )
    done = await record_exit(RecordExitCommand(tenant.id, session.id, at=at(4)))
    assert done.closed and done.session.charge is not None
    assert done.session.charge.credits == price(4, 0)
    assert len(await entries_of(storage, tenant, session.id)) == 1


async def test_an_exit_before_the_start_cannot_correct_the_reapers_end(
    storage: Any, tenant: Tenant
) -> None:
    session = await rated_session_of_ana(storage, tenant)
    await storage.sessions.heartbeat(tenant.id, session.id, at(3))
    await reaper()(storage)
    reaped = await storage.sessions.get(tenant.id, session.id)
    assert (reaped.status, reaped.ended_at) == (SessionStatus.TIMED_OUT, at(3))

    with pytest.raises(InvalidInput):
        await exit_of(tenant, session.id, -2, usage={"analysis": 1})(storage)

    stored, entries, _ = await books_balance(storage, tenant, session.id)
    assert (stored.status, stored.ended_at, stored.usage, stored.charge_revision) == (
        SessionStatus.TIMED_OUT,
        at(3),
        {},
        0,
    )
    assert len(entries) == 1


async def test_client_exits_correcting_one_reaped_session_at_once_correct_it_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """DESIGN.md Wave 2: the client's own exit replaces the reaper's end once; the correction's
    difference is written exactly once (balance = sum of the ledger)."""
    session = await rated_session_of_ana(storage, tenant)
    await storage.sessions.heartbeat(tenant.id, session.id, at(3))
    await reaper()(storage)

    answers = await race(
        *(
            exit_of(tenant, session.id, m, status=s, usage={"analysis": 1})
            for m, s in ((5, "completed"), (7, "abandoned"), (9, "completed"), (11, "abandoned"))
        )
    )
    await settle_what_is_pending(storage, tenant)

    stored, entries, balance = await books_balance(storage, tenant, session.id)
    assert stored.status in (SessionStatus.COMPLETED, SessionStatus.ABANDONED)
    assert len({(a.session.ended_at, a.session.status) for a in answers}) == 1
    minutes = int((stored.ended_at - stored.started_at).total_seconds() // 60)
    assert stored.usage == {"analysis": 1}
    assert sorted((e.kind.value, e.amount) for e in entries) == sorted(
        [("charge", -price(3, 0)), ("adjustment", -(price(minutes, 1) - price(3, 0)))]
    )
    assert balance == 100 - price(minutes, 1)


async def test_a_heartbeat_racing_an_exit_never_moves_or_reopens_its_end(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    session = await rated_session_of_ana(storage, tenant)
    clock = FakeClock(at(20))

    def beat(minute: int) -> Call:
        command = RecordHeartbeatCommand(tenant.id, session.id, at=at(minute))
        return lambda s: wired(s, clock).use_cases().record_heartbeat()(command)

    calls = [beat(m) for m in (1, 2, 4, 6, 8, 9, 10)]
    calls.insert(3, exit_of(tenant, session.id, 5))
    outcomes = await race(*calls, return_exceptions=True)

    unexpected = [
        o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, Conflict)
    ]
    assert unexpected == []
    stored, entries, _ = await books_balance(storage, tenant, session.id)
    assert (stored.status, stored.ended_at) == (SessionStatus.COMPLETED, at(5))
    assert stored.last_seen_at >= stored.ended_at
    assert [e.amount for e in entries] == [-price(5, 0)]
    with pytest.raises(Conflict):
        await beat(11)(storage)


# 3. Optimistic writes that lose to a concurrent writer (forced interleavings)


class PausedWrite:
    """Stops the first optimistic write of `columns` (PostgreSQL: save_unless_changed, or
    save_many_unless_changed for a write grouped with others, also with the columns of a charge
    settled in the write; MongoDB: the guarded _save) after its session was read, until another
    racer is done."""

    def __init__(self, storage_url: str, columns: tuple[str, ...]) -> None:
        self.reached, self.go = threading.Event(), threading.Event()
        self._columns = {columns, tuple(dict.fromkeys((*columns, *SETTLED_COLUMNS)))}
        if storage_url.startswith("postgresql"):
            target = adapters.sqlalchemy.asyncpg_sessions
            self._patches = [
                patch.object(target, name, self._wrap(getattr(target, name), columns_at))
                for name, columns_at in (
                    ("save_unless_changed", 3),
                    ("save_many_unless_changed", 2),
                )
            ]
        elif storage_url.startswith("mongodb"):
            self._patches = [
                patch.object(
                    MongoSessionRepository, "_save", self._wrap(MongoSessionRepository._save, 3)
                )
            ]
        else:
            pytest.skip("no optimistic write on this store: its steps hold a lock")

    def _wrap(self, original: Any, columns_at: int) -> Any:
        async def paused(*args: Any, **kwargs: Any) -> Any:
            if tuple(args[columns_at]) in self._columns and not self.reached.is_set():
                self.reached.set()
                await wait_for(self.go)
            return await original(*args, **kwargs)

        return paused

    def __enter__(self) -> "PausedWrite":
        for each in self._patches:
            each.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        for each in reversed(self._patches):
            each.__exit__(*exc)


async def test_an_exit_whose_write_lost_to_a_metered_batch_prices_the_batchs_meters(
    storage: Any, storage_url: str, tenant: Tenant, race: Race
) -> None:
    """The exit read the session, then a batch with two analyses committed: the exit's write
    must fail and be decided again on the fresh session (its price counts all three)."""
    session = await rated_session_of_ana(storage, tenant)
    # Seen at 2.5 already: the batch's events, dated before, move no sign of life; only the
    # usage and the event count change.
    await storage.sessions.heartbeat(tenant.id, session.id, at(2.5))
    events = [Event(session.id, n, "analysis", at(n), meters={"analysis": 1}) for n in (1, 2)]

    async def batch(s: Any) -> Any:
        return (
            await wired(s, CLOCK).use_cases().ingest_events()(IngestEventsCommand(tenant, events))
        )

    with PausedWrite(storage_url, END_CHANGES) as paused:
        await race(
            exit_of(tenant, session.id, 3, usage={"analysis": 1}),
            after(paused.reached, paused.go, batch),
        )
    await settle_what_is_pending(storage, tenant)

    stored, _entries, balance = await books_balance(storage, tenant, session.id)
    assert (stored.usage, stored.event_count) == ({"analysis": 3}, 2)
    assert stored.charge.credits == price(3, 3)
    assert balance == 100 - price(3, 3)


async def test_a_heartbeat_whose_write_lost_to_an_exit_is_refused_and_leaves_the_end(
    storage: Any, storage_url: str, tenant: Tenant, race: Race
) -> None:
    """The heartbeat read the session active, then the exit closed and charged it: the
    heartbeat's write (last_seen_at, ended_at, charge_state, charge_revision) must not land."""
    session = await rated_session_of_ana(storage, tenant)
    command = RecordHeartbeatCommand(tenant.id, session.id, at=at(8))

    async def beat(s: Any) -> Any:
        return await wired(s, FakeClock(at(20))).use_cases().record_heartbeat()(command)

    with PausedWrite(storage_url, LIFE_CHANGES) as paused:
        outcomes = await race(
            beat,
            after(paused.reached, paused.go, exit_of(tenant, session.id, 5)),
            return_exceptions=True,
        )

    assert isinstance(outcomes[0], Conflict), outcomes[0]
    stored, entries, _ = await books_balance(storage, tenant, session.id)
    assert (stored.status, stored.ended_at, stored.last_seen_at) == (
        SessionStatus.COMPLETED,
        at(5),
        at(5),
    )
    assert [e.amount for e in entries] == [-price(5, 0)]


async def test_an_exit_whose_write_lost_to_the_reaper_corrects_its_end_and_is_charged_once(
    storage: Any, storage_url: str, tenant: Tenant, race: Race
) -> None:
    """The exit read the session active, then the reaper timed it out at its last sign of life
    and charged it: the exit must be decided again (a correction, one adjustment), never write
    its close over the reaper's and charge revision 0 a second time."""
    session = await rated_session_of_ana(storage, tenant)
    await storage.sessions.heartbeat(tenant.id, session.id, at(3))

    with PausedWrite(storage_url, END_CHANGES) as paused:
        answers = await race(
            exit_of(tenant, session.id, 5, usage={"analysis": 1}),
            after(paused.reached, paused.go, reaper()),
        )
    await settle_what_is_pending(storage, tenant)

    assert not answers[0].closed  # the reaper closed it; the exit corrected it
    stored, entries, balance = await books_balance(storage, tenant, session.id)
    assert (stored.status, stored.ended_at, stored.usage) == (
        SessionStatus.COMPLETED,
        at(5),
        {"analysis": 1},
    )
    assert sorted((e.kind.value, e.amount) for e in entries) == sorted(
        [("charge", -price(3, 0)), ("adjustment", -(price(5, 1) - price(3, 0)))]
    )
    assert balance == 100 - price(5, 1)


# 4. A LiveKit stay's webhooks, each delivered twice, all at once


RATE = Rate("livekit", 1, meter_rates={"video.seconds": MeterRate(Decimal(60), 2)})


def stamped(minutes: float) -> Any:
    return at(minutes).replace(microsecond=0)


async def deliver(storage: Any, webhook: tuple[str, dict[str, str]]) -> Any:
    body, headers = webhook
    receive = wired(storage, FakeClock(at(90))).use_cases().receive_livekit_webhook()
    return await receive(ReceiveLiveKitWebhookCommand(body, headers["Authorization"]))


async def test_every_webhook_of_a_stay_delivered_twice_at_once_counts_everything_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """DESIGN.md: participant and track events become sessions and usage exactly once. The
    webhook id is recorded after handling, so two deliveries of each are both handled: joined,
    track published (1) and unpublished (6), left (11), none stored before."""
    server = LiveKitServer()
    await storage.livekit_accounts.add(LiveKitAccount(server.key, tenant.id, server.secret, None))
    await storage.rates.put(tenant.id, RATE)
    joined = server.joined("ana", stamped(0))
    published = server.track("track_published", "ana", stamped(0), "TR_1", "CAMERA", stamped(1))
    unpublished = server.track("track_unpublished", "ana", stamped(0), "TR_1", "CAMERA", stamped(6))
    left = server.left("ana", stamped(0), stamped(11))
    webhooks = [left, unpublished, published, joined] * 2

    received = await race(*(lambda s, w=w: deliver(s, w) for w in webhooks))
    await settle_what_is_pending(storage, tenant)

    for n in range(4):
        assert sorted([received[n].redelivered, received[n + 4].redelivered]) == [False, True]
    stay_id = session_id_of(server.room["sid"], "PA_ana")
    stay = await storage.sessions.get(tenant.id, stay_id)
    assert (stay.status, stay.started_at, stay.ended_at) == (
        SessionStatus.COMPLETED,
        stamped(0),
        stamped(11),
    )
    assert stay.usage == {"video.seconds": 300}
    # Each end the track took is an event once (the stay's end at 11 may come first, when the
    # left overtakes the unpublish); its last end is LiveKit's own, 6.
    found = sorted(await storage.events.find(tenant.id, stay_id, 10), key=lambda e: e.sequence_no)
    kept = [(e.type, e.at) for e in found]
    assert len(kept) == len(set(kept)), kept
    assert [k for k in kept if k[0] == "video_start"] == [("video_start", stamped(1))]
    assert [k for k in kept if k[0] == "video_end"][-1] == ("video_end", stamped(6))
    assert set(kept) <= {
        ("video_start", stamped(1)),
        ("video_end", stamped(6)),
        ("video_end", stamped(11)),
    }
    assert [e.sequence_no for e in found] == list(range(1, len(found) + 1))
    assert (stay.event_count, stay.max_sequence_no, stay.event_gaps) == (len(found),) * 2 + ([],)
    entries = [
        e
        for e in await storage.ledger.entries(tenant.id, "ana", limit=10)
        if e.session_id == stay_id
    ]
    assert stay.charge is not None and stay.charge.credits == 11 + 10
    assert sum(e.amount for e in entries) == -21
    assert sum(len(r.ended) for r in received) == 1


class DiesAfterTheTracksStep(Proxy):
    """The sessions port of a process that dies right after a track's step stored its seconds,
    before the stay's new price is settled (LiveKitStays.record_track reads the stay back)."""

    async def get(self, *args: Any) -> Any:
        raise ConnectionError("the process died")


@pytest.mark.parametrize("crash", [True, False], ids=["crashed", "control"])
async def test_a_late_unpublish_handled_again_after_a_crash_corrects_the_charged_stay(
    storage: Any, tenant: Tenant, crash: bool
) -> None:
    """A stay charged for 10 minutes of camera (its left came before the camera's unpublish),
    then the unpublish at 6 arrives: 5 minutes of camera, 21 credits, not 31. Its handling dies
    after the track's step stored the new seconds and before the stay's new price was settled;
    LiveKit redelivers it (the id is recorded last, so it is handled again) and finds the track
    as reported: the stay was left to be settled again in the track's own step.
    DESIGN.md: a correction that changes the price writes its adjustment exactly once; crash
    safety: what is left unsettled is visible and settled by the reaper."""
    server = LiveKitServer()
    await storage.livekit_accounts.add(LiveKitAccount(server.key, tenant.id, server.secret, None))
    await storage.rates.put(tenant.id, RATE)
    for webhook in (
        server.joined("ana", stamped(0)),
        server.track("track_published", "ana", stamped(0), "TR_1", "CAMERA", stamped(1)),
        server.left("ana", stamped(0), stamped(11)),
    ):
        await deliver(storage, webhook)
    stay_id = session_id_of(server.room["sid"], "PA_ana")
    charged = await storage.sessions.get(tenant.id, stay_id)
    assert charged.charge is not None and charged.charge.credits == 11 + 20

    late = server.track("track_unpublished", "ana", stamped(0), "TR_1", "CAMERA", stamped(6))
    body, headers = late
    dying = wired(storage, FakeClock(at(90)), sessions=DiesAfterTheTracksStep(storage.sessions))
    if crash:
        with pytest.raises(ConnectionError):
            await dying.use_cases().receive_livekit_webhook()(
                ReceiveLiveKitWebhookCommand(body, headers["Authorization"])
            )
    await deliver(storage, late)  # redelivered
    await reaper(FakeClock(at(95)))(storage)  # and the reaper settles what is pending

    stay = await storage.sessions.get(tenant.id, stay_id)
    entries = [
        e
        for e in await storage.ledger.entries(tenant.id, "ana", limit=10)
        if e.session_id == stay_id
    ]
    assert stay.usage == {"video.seconds": 300}
    assert (stay.charge_state, stay.charge.credits if stay.charge else None) == (
        ChargeState.CHARGED,
        11 + 10,
    )
    assert sum(e.amount for e in entries) == -(11 + 10)


class DiesAtFinishedAt(Proxy):
    """The finished rooms port of a process that dies right after a join stored its stay,
    before it looked whether the stay's room had finished."""

    async def finished_at(self, *args: Any) -> Any:
        raise ConnectionError("the process died")


@pytest.mark.parametrize("crash", [True, False], ids=["crashed", "control"])
async def test_a_join_after_its_rooms_end_handled_again_after_a_crash_ends_with_the_room(
    storage: Any, tenant: Tenant, crash: bool
) -> None:
    """room_finished (at 20) came first; the late join (at 0) dies after storing the stay and
    before looking at the room. Redelivered, it must still end the stay with its room (a stay
    without a URL never times out: left open, it would stay open for good)."""
    server = LiveKitServer()
    await storage.livekit_accounts.add(LiveKitAccount(server.key, tenant.id, server.secret, None))
    await deliver(storage, server.webhook("room_finished", stamped(20)))
    join = server.joined("ana", stamped(0))
    if crash:
        body, headers = join
        dying = wired(
            storage, FakeClock(at(90)), finished_rooms=DiesAtFinishedAt(storage.finished_rooms)
        )
        with pytest.raises(ConnectionError):
            await dying.use_cases().receive_livekit_webhook()(
                ReceiveLiveKitWebhookCommand(body, headers["Authorization"])
            )
    await deliver(storage, join)  # (re)delivered

    stay = await storage.sessions.get(tenant.id, session_id_of(server.room["sid"], "PA_ana"))
    assert (stay.status, stay.ended_at) == (SessionStatus.COMPLETED, stamped(20))


class DiesAtSettle(Proxy):
    """The ledger of a process that dies after the exit closed the session, before charging."""

    async def settle(self, *args: Any) -> Any:
        raise ConnectionError("the process died")


async def test_exits_retried_at_once_after_a_crash_before_the_charge_charge_it_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """DESIGN.md crash safety: closed but not charged is `pending`; API.md: a replayed exit
    finishes it, with the first exit's end, and nothing is charged twice."""
    session = await rated_session_of_ana(storage, tenant)
    command = RecordExitCommand(tenant.id, session.id, at=at(3), usage={"analysis": 1})
    dies = {"ledger": DiesAtSettle(storage.ledger), "sessions": ChargesApart(storage.sessions)}
    dying = wired(storage, CLOCK, **dies).use_cases().record_exit()
    with pytest.raises(ConnectionError):
        await dying(command)
    assert (await storage.sessions.get(tenant.id, session.id)).charge_state is ChargeState.PENDING

    answers = await race(
        *(exit_of(tenant, session.id, m, usage={"analysis": 1}) for m in (3, 5, 7, 9))
    )

    assert not any(a.closed for a in answers)
    assert {(a.session.ended_at, a.session.charge_state) for a in answers} == {
        (at(3), ChargeState.CHARGED)
    }
    stored, entries, balance = await books_balance(storage, tenant, session.id)
    assert stored.usage == {"analysis": 1}
    assert ([e.amount for e in entries], balance) == ([-price(3, 1)], 100 - price(3, 1))
