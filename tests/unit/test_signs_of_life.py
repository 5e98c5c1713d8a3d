"""The domain rules of live sessions: signs of life, provisional ends, late data, corrections of
the charge, the running cost, and the settings that bound them."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.charging import CREDITS_EXHAUSTED, CREDITS_LOW, estimate, price, settle
from domain.clock import happened
from domain.credits import EntryKind, Rate
from domain.errors import InvalidInput, Late
from domain.events import Event
from domain.session import (
    RECONCILED,
    ROOM_FINISHED,
    Charge,
    ChargeState,
    Closing,
    Exit,
    Session,
    SessionRequest,
)
from domain.session import SessionStatus as Status
from domain.staleness import Staleness
from domain.tenants import TenantSettings

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
WEEK = timedelta(days=7)
RATED = frozenset({"counseling"})


def start(kind: str = "counseling", **request: Any) -> Session:
    fields = {"kind": kind, "resource_id": "room-1", "subject_id": "u1", **request}
    return Session.start("t", "s", SessionRequest(started_at=NOW, **fields), NOW)


def reaped_at(minutes: int, kind: str = "counseling") -> Session:
    session = start(kind)
    session.heartbeat(NOW + minutes * MINUTE)
    session.close(session.time_out(), RATED)
    return session


def analysis(n: int, minutes: float, **meters: int) -> Event:
    return Event("s", n, "analysis", NOW + minutes * MINUTE, meters=dict(meters))


def test_a_sign_of_life_moves_last_seen_forward_never_back_never_past_now() -> None:
    session = start()
    assert session.seen(NOW + 5 * MINUTE, now=NOW + 10 * MINUTE)
    assert not session.seen(NOW + 2 * MINUTE, now=NOW + 10 * MINUTE)
    session.seen(NOW + 30 * MINUTE, now=NOW + 10 * MINUTE)
    assert session.last_seen_at == NOW + 10 * MINUTE


@pytest.mark.parametrize(
    ("ended_by_client", "minutes_after_start", "checked_at", "refusal"),
    [
        (True, 5, 11, None),  # dated before the end: a flushed buffer
        (True, 10, 11, None),  # at the end itself
        (True, 11, 12, "session_ended"),  # after a client's end, which is final
        (False, 11, 12, None),  # after the reaper's end, which is a guess
        (True, 5, 10 + 7 * 24 * 60 + 1, "late"),  # the window has passed
        (False, 11, 10 + 7 * 24 * 60 + 1, "late"),
    ],
)
def test_which_events_an_ended_session_takes(
    ended_by_client: bool, minutes_after_start: int, checked_at: int, refusal: str | None
) -> None:
    session = start()
    if ended_by_client:
        session.close(Exit(at=NOW + 10 * MINUTE))
    else:
        session.heartbeat(NOW + 10 * MINUTE)
        session.close(session.time_out())
    at = NOW + minutes_after_start * MINUTE
    assert session.refusal(at, NOW + checked_at * MINUTE, WEEK) == refusal


def test_an_active_session_takes_every_event() -> None:
    assert start().refusal(NOW - WEEK, NOW + 2 * WEEK, WEEK) is None


def test_events_after_the_reapers_end_move_it_and_reprice_a_charged_session() -> None:
    session = reaped_at(10)
    session.settle(Charge(20, 80))

    session.record_events([analysis(1, 14, analysis=1), analysis(2, 12)], NOW + 20 * MINUTE)

    assert (session.status, session.ended_at) == (Status.TIMED_OUT, NOW + 14 * MINUTE)
    assert (session.charge_state, session.charge_revision) == (ChargeState.PENDING, 1)
    assert (session.event_count, session.usage) == (2, {"analysis": 1})


def test_late_events_without_meters_leave_an_unmoved_charge_alone() -> None:
    session = start()
    session.close(Exit(at=NOW + 10 * MINUTE), RATED)
    session.settle(Charge(20, 80))

    session.record_events([analysis(1, 5)], NOW + 11 * MINUTE)

    assert (session.charge_state, session.charge_revision) == (ChargeState.CHARGED, 0)


def test_the_clients_exit_replaces_the_reapers_end_once() -> None:
    session = reaped_at(4)
    session.settle(Charge(8, 92))
    exit = Exit(at=NOW + 6 * MINUTE, status=Status.ABANDONED, reason="network came back")

    assert session.close(exit, RATED, NOW + 20 * MINUTE, WEEK) is Closing.CORRECTED
    assert (session.status, session.ended_at) == (Status.ABANDONED, NOW + 6 * MINUTE)
    assert (session.charge_state, session.charge_revision) == (ChargeState.PENDING, 1)
    later = Exit(at=NOW + 9 * MINUTE)
    assert session.close(later, RATED, NOW + 21 * MINUTE, WEEK) is Closing.REPLAY
    assert session.ended_at == NOW + 6 * MINUTE


def test_an_exit_without_a_time_keeps_the_reapers_end() -> None:
    session = reaped_at(4)
    received = Exit(at=NOW + 30 * MINUTE, at_is_default=True)
    assert session.close(received, RATED, NOW + 30 * MINUTE, WEEK) is Closing.CORRECTED
    assert (session.status, session.ended_at) == (Status.COMPLETED, NOW + 4 * MINUTE)


def test_no_correction_after_the_window_nor_by_the_reaper_itself() -> None:
    session = reaped_at(4)
    assert session.close(Exit(at=NOW), RATED, NOW + 4 * MINUTE + WEEK * 2, WEEK) is Closing.REPLAY
    assert session.close(session.time_out(), RATED, NOW + 5 * MINUTE, WEEK) is Closing.REPLAY
    assert session.status is Status.TIMED_OUT


@pytest.mark.parametrize("guess", [RECONCILED, ROOM_FINISHED])
def test_a_guessed_end_is_replaced_by_the_sessions_own_exit_once_and_by_no_other_guess(
    guess: str,
) -> None:
    session = start("livekit")
    ended = Exit(at=NOW + 60 * MINUTE, reason=guess)
    assert session.close(ended, RATED, NOW + 60 * MINUTE, WEEK) is Closing.CLOSED
    assert session.is_provisional

    again = Exit(at=NOW + 70 * MINUTE, reason=ROOM_FINISHED)
    assert session.close(again, RATED, NOW + 70 * MINUTE, WEEK) is Closing.REPLAY
    assert session.close(session.time_out(), RATED, NOW + 70 * MINUTE, WEEK) is Closing.REPLAY
    left = Exit(at=NOW + 11 * MINUTE)
    assert session.close(left, RATED, NOW + 70 * MINUTE, WEEK) is Closing.CORRECTED
    assert (session.ended_at, session.exit_reason) == (NOW + 11 * MINUTE, None)
    assert not session.is_provisional


def test_a_guess_replaces_the_reapers_end_and_the_sessions_own_exit_replaces_that() -> None:
    session = reaped_at(4)
    finished = Exit(at=NOW + 60 * MINUTE, reason=ROOM_FINISHED)
    assert session.close(finished, RATED, NOW + 60 * MINUTE, WEEK) is Closing.CORRECTED
    left = Exit(at=NOW + 11 * MINUTE)
    assert session.close(left, RATED, NOW + 61 * MINUTE, WEEK) is Closing.CORRECTED
    assert (session.status, session.ended_at) == (Status.COMPLETED, NOW + 11 * MINUTE)


def test_a_pending_reaped_session_cancelled_by_its_client_is_never_charged() -> None:
    session = reaped_at(4)
    cancel = Exit(at=NOW + 4 * MINUTE, status=Status.CANCELLED)
    session.close(cancel, RATED, NOW + 5 * MINUTE, WEEK)
    assert session.charge_state is ChargeState.NOT_CHARGED


def test_a_sign_of_life_of_a_provisional_end_moves_it_within_the_window_only() -> None:
    session = reaped_at(4)
    assert session.sign_of_life(NOW + 9 * MINUTE, NOW + 10 * MINUTE, WEEK)
    assert session.ended_at == NOW + 9 * MINUTE
    assert not session.sign_of_life(NOW + 12 * MINUTE, NOW + 9 * MINUTE + 2 * WEEK, WEEK)
    assert session.ended_at == NOW + 9 * MINUTE


def test_the_first_settlement_is_a_charge_and_later_ones_adjust_by_the_difference() -> None:
    session = start()
    first = settle(session, credits=8, balance_before=10)
    assert (first.kind, first.amount, first.reason) == (EntryKind.CHARGE, -8, "counseling session")
    assert first.charge == Charge(8, 2, None) and first.alert is None

    session.settle(first.charge)
    more = settle(session, credits=14, balance_before=2)
    assert (more.kind, more.amount, more.reason) == (
        EntryKind.ADJUSTMENT,
        -6,
        "counseling session corrected",
    )
    assert more.charge == Charge(14, -4, "negative_balance")
    assert more.alert is None  # only the first charge into the red is alerted

    session.settle(more.charge)
    refund = settle(session, credits=0, balance_before=-4)
    assert (refund.amount, refund.charge) == (14, Charge(0, 10, None))
    session.settle(refund.charge)
    assert not settle(session, credits=0, balance_before=10).writes_entry  # nothing changed


def test_a_first_charge_that_leaves_a_negative_balance_is_alerted() -> None:
    settled = settle(start(), credits=5, balance_before=3)
    assert settled.alert == "charging 5 credits left a balance of -2"


def test_price_is_nothing_for_sessions_that_are_not_charged() -> None:
    rate = Rate("counseling", 2)
    session = start()
    session.close(Exit(at=NOW + 3 * MINUTE, status=Status.CANCELLED))
    assert price(session, rate) == 0
    anonymous = start(subject_id=None, client_key="k")
    anonymous.close(Exit(at=NOW + 3 * MINUTE))
    assert price(anonymous, rate) == 0
    done = start()
    done.close(Exit(at=NOW + 3 * MINUTE))
    assert (price(done, rate), price(done, None)) == (6, 0)


@pytest.mark.parametrize(
    ("balance", "low", "warning"),
    [(100, 0, None), (100, 95, CREDITS_LOW), (9, 0, CREDITS_EXHAUSTED), (10, 0, None)],
)
def test_the_running_cost_warns_before_credits_run_out(
    balance: int, low: int, warning: str | None
) -> None:
    running = start()
    cost = estimate(running, Rate("counseling", 2), balance, NOW + 5 * MINUTE, low)
    assert cost.credits == 10 and cost.balance_after == balance - 10
    assert cost.warning == warning
    assert running.ended_at is None  # estimating closes nothing


def test_staleness_by_kind_with_livekit_never_idle_unless_reconciled() -> None:
    settings = TenantSettings(idle_timeouts={"kiosk": 60, "recording": None})
    now = NOW + 10 * MINUTE
    plain = Staleness.of(settings, now, reconciled=False)
    reconciled = Staleness.of(settings, now, reconciled=True)

    def stale(kind: str, staleness: Staleness, seen_minutes: int = 8) -> bool:
        session = start(kind)
        session.heartbeat(NOW + seen_minutes * MINUTE)
        return staleness.is_stale(session)

    assert stale("kiosk", plain) and not stale("webinar", plain)
    assert stale("webinar", plain, seen_minutes=4)
    assert not stale("recording", plain, seen_minutes=0)
    assert not stale("livekit", plain, seen_minutes=0)
    assert stale("livekit", reconciled, seen_minutes=0)


def test_the_cap_closes_a_session_alive_too_long() -> None:
    settings = TenantSettings(max_session_seconds=3600, idle_timeouts={"recording": None})
    session = start("recording")
    session.heartbeat(NOW + 61 * MINUTE)
    assert Staleness.of(settings, NOW + 61 * MINUTE, reconciled=False).is_stale(session)
    uncapped = TenantSettings(max_session_seconds=None, idle_timeouts={"recording": None})
    assert not Staleness.of(uncapped, NOW + 61 * MINUTE, reconciled=False).is_stale(session)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"idle_timeouts": {"kiosk": -1}}, "idle_timeouts.kiosk"),
        ({"idle_timeouts": {"kiosk": 8 * 24 * 3600}}, "idle_timeouts.kiosk"),
        ({"idle_timeouts": {"kiosk": "5"}}, "idle_timeouts.kiosk"),
        ({"idle_timeouts": {"Kiosk!": 60}}, "idle_timeouts.Kiosk!"),
        ({"idle_timeouts": ["kiosk"]}, "idle_timeouts"),
        ({"max_session_seconds": 0}, "max_session_seconds"),
        ({"late_data_window_seconds": 40 * 24 * 3600}, "late_data_window_seconds"),
        ({"low_balance_credits": -1}, "low_balance_credits"),
    ],
)
def test_settings_out_of_shape_or_range_name_the_field(
    settings: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        TenantSettings(**settings)
    assert refused.value.field == field


def test_instants_are_bounded_and_late_ones_are_refused_as_late() -> None:
    assert happened("at", NOW - 6 * 24 * 60 * MINUTE, NOW, WEEK) == NOW - 6 * 24 * 60 * MINUTE
    with pytest.raises(Late):
        happened("at", NOW - WEEK - MINUTE, NOW, WEEK)
    with pytest.raises(InvalidInput, match="future"):
        happened("at", NOW + 6 * MINUTE, NOW, WEEK)
    with pytest.raises(InvalidInput, match="2000-01-01"):
        happened("at", datetime(1, 1, 1, tzinfo=UTC), NOW, WEEK * 10**6)


def test_an_exit_refused_for_its_usage_changes_nothing_and_the_reaper_always_closes() -> None:
    session = start()
    session.record_events([analysis(1, 1, analysis=999_999_999)], NOW + 2 * MINUTE)

    with pytest.raises(InvalidInput):
        session.close(Exit(at=NOW + 3 * MINUTE, usage={"analysis": 1}))
    assert (session.status, session.ended_at) == (Status.ACTIVE, None)

    assert session.close(session.time_out()) is Closing.CLOSED  # adds nothing: never refused
