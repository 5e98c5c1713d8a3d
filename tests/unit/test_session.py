from datetime import UTC, datetime, timedelta, timezone

import pytest

from domain.errors import Conflict, InvalidInput
from domain.events import find_gaps
from domain.session import ChargeState, Exit, Session, SessionRequest, SessionStatus

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def start(**fields: object) -> Session:
    request = SessionRequest(
        **{"kind": "webinar", "resource_id": "w1", "subject_id": "u1", **fields}  # type: ignore[arg-type]
    )
    return Session.start("t", "s", request, now=NOW)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "Webinar"}, "kind"),
        ({"kind": "a" * 65}, "kind"),
        ({"resource_id": ""}, "resource_id"),
        ({"subject_id": None}, "client_key"),
        ({"started_at": NOW + timedelta(minutes=6)}, "started_at"),
        ({"started_at": datetime(2026, 11, 24, 12, 0)}, "started_at"),
    ],
)
def test_a_start_that_breaks_a_rule_names_the_field(fields: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        start(**fields)
    assert refused.value.field == field


def test_a_start_may_come_a_little_ahead_of_our_clock_and_in_any_offset() -> None:
    ahead = start(started_at=NOW + timedelta(minutes=4))
    assert ahead.started_at == NOW + timedelta(minutes=4)
    tokyo = start(started_at=datetime(2026, 11, 24, 20, 0, tzinfo=timezone(timedelta(hours=9))))
    assert tokyo.started_at == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    assert tokyo.started_at.tzinfo is UTC


def test_attributes_from_the_request_context_yield_to_the_clients() -> None:
    session = start(attributes={"ip": "10.0.0.1"}, context={"ip": "1.2.3.4", "user_agent": "X"})
    assert session.attributes == {"ip": "10.0.0.1", "user_agent": "X"}


def test_a_replay_matches_what_the_client_said_not_what_the_transport_added() -> None:
    session = start(context={"ip": "1.2.3.4"})
    assert session.matches(SessionRequest("webinar", "w1", "u1", context={"ip": "5.6.7.8"}))
    assert not session.matches(SessionRequest("webinar", "w2", "u1"))
    assert not session.matches(SessionRequest("webinar", "w1", "u1", started_at=NOW - timedelta(1)))


def test_closing_is_final_and_heartbeats_after_it_conflict() -> None:
    session = start()
    assert session.close(Exit(at=NOW + timedelta(minutes=3), usage={"seconds": 180}))
    assert session.duration_seconds == 180
    assert session.charge_state is ChargeState.NOT_CHARGED

    assert not session.close(Exit(at=NOW + timedelta(minutes=9), usage={"seconds": 1}))
    assert session.ended_at == NOW + timedelta(minutes=3) and session.usage == {"seconds": 180}
    with pytest.raises(Conflict):
        session.heartbeat(NOW + timedelta(minutes=10))


def test_an_exit_before_the_start_is_refused() -> None:
    session = start()
    with pytest.raises(InvalidInput):
        session.close(Exit(at=NOW - timedelta(seconds=1)))
    assert session.status is SessionStatus.ACTIVE


def test_the_reaper_ends_a_session_at_its_last_sign_of_life() -> None:
    session = start()
    session.heartbeat(NOW + timedelta(minutes=7))
    session.heartbeat(NOW + timedelta(minutes=2))  # late heartbeats never move it back
    session.close(session.time_out())
    assert session.status is SessionStatus.TIMED_OUT
    assert session.ended_at == NOW + timedelta(minutes=7)


@pytest.mark.parametrize(
    ("numbers", "gaps"),
    [
        ([], []),
        ([1, 2, 3], []),
        ([1, 2, 5], [(3, 4)]),
        ([3], [(1, 2)]),
        ([2, 4, 4, 7], [(1, 1), (3, 3), (5, 6)]),
    ],
)
def test_gaps_are_the_missing_numbers_up_to_the_highest(numbers: list[int], gaps: list) -> None:
    assert find_gaps(numbers) == gaps
