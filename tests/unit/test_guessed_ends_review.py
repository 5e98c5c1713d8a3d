"""A hostile review of the guessed ends (48d8237: the reaper's and reconciliation's exits end at
the later of their time and the session's last_seen_at as it closes; 7c793e5: a client's exit
may not give a guess's reason). Every test here is an attack that held."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from application.sessions.record_exit import RecordExit, RecordExitCommand
from domain.errors import InvalidInput
from domain.session import (
    RECONCILED,
    ROOM_FINISHED,
    Closing,
    Exit,
    Session,
    SessionRequest,
    SessionStatus,
)
from domain.tenants import Tenant
from tests.fakes import FakeClock
from tests.unit.conftest import Starter

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
WINDOW = timedelta(days=7)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def seen_at_10() -> Session:
    """An active stay started at 0, last seen at 10."""
    request = SessionRequest("livekit", "room-1", subject_id="ana", started_at=at(0))
    session = Session.start("tenant-1", str(uuid.uuid4()), request, now=at(0))
    assert session.heartbeat(at(10))
    return session


def test_the_reapers_exit_dated_before_the_last_sign_of_life_ends_at_that_sign() -> None:
    """Held: an exit of the reaper's (status timed_out) read at 2, applied after a sign of
    life at 10, ends the session at 10: no sign of life is left after its end."""
    session = seen_at_10()

    assert session.close(Exit(at(2), SessionStatus.TIMED_OUT)) is Closing.CLOSED

    assert (session.ended_at, session.last_seen_at) == (at(10), at(10))


@pytest.mark.parametrize("reason", [None, ROOM_FINISHED, "user_left"])
def test_an_exit_that_is_no_last_seen_guess_keeps_its_own_time(reason: str | None) -> None:
    """Held: only the reaper's and reconciliation's ends follow last_seen_at; a client's exit
    (a reason of its own or none) and a finished room (LiveKit's own time) end where they say,
    even before the last sign of life."""
    session = seen_at_10()

    session.close(Exit(at(2), reason=reason))

    assert (session.ended_at, session.last_seen_at) == (at(2), at(10))


def test_reconciliation_correcting_the_reapers_end_a_sign_of_life_moved_keeps_the_later_end() -> (
    None
):
    """Held: the reaper ended the stay at 10; a sign of life at 15 moved that provisional end;
    reconciliation, having read the stay last seen at 12, corrects it: it ends at 15, reason
    reconciled, and is then a guess a later client exit may still replace."""
    session = seen_at_10()
    session.close(session.time_out())
    assert session.sign_of_life(at(15), at(20), WINDOW)

    corrected = session.close(Exit(at(12), reason=RECONCILED), now=at(20), window=WINDOW)

    assert corrected is Closing.CORRECTED
    assert (session.ended_at, session.last_seen_at, session.status) == (
        at(15),
        at(15),
        SessionStatus.COMPLETED,
    )
    assert session.is_provisional
    assert session.close(Exit(at(13)), now=at(20), window=WINDOW) is Closing.CORRECTED
    assert session.ended_at == at(13)


@pytest.mark.parametrize("reason", ["Reconciled", " reconciled", "ROOM_FINISHED", "timed_out"])
async def test_a_client_reason_that_only_looks_like_a_guess_is_taken_and_its_end_is_final(
    start: Starter, record_exit: RecordExit, clock: FakeClock, tenant: Tenant, reason: str
) -> None:
    """Held: the refusal is of the exact reasons of GUESSED_END_REASONS; a near miss is a
    client's own reason, and it makes no guess: a later exit with another time is a replay,
    not a correction of the client's end."""
    session = await start()
    clock.advance(60)

    first = await record_exit(RecordExitCommand(tenant.id, session.id, reason=reason))
    clock.advance(60)
    later = clock.now() - timedelta(seconds=30)
    again = await record_exit(RecordExitCommand(tenant.id, session.id, at=later))

    assert first.closing is Closing.CLOSED and first.session.exit_reason == reason
    assert again.closing is Closing.REPLAY
    assert again.session.ended_at == first.session.ended_at


@pytest.mark.parametrize("reason", [RECONCILED, ROOM_FINISHED])
async def test_a_guess_reason_is_refused_even_for_an_ended_sessions_replay(
    start: Starter, record_exit: RecordExit, tenant: Tenant, reason: str
) -> None:
    """Held: a client's exit giving a guess's reason is a 422 on `reason` whatever the session
    (here ended by the client already), before the session is read."""
    session = await start()
    await record_exit(RecordExitCommand(tenant.id, session.id))

    with pytest.raises(InvalidInput) as refused:
        await record_exit(RecordExitCommand(tenant.id, session.id, reason=reason))

    assert refused.value.field == "reason" and reason in refused.value.message
