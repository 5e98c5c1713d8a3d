"""The Session entity: what a valid start is, what a replay is, how it closes exactly once."""

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from domain.errors import Conflict, InvalidInput
from domain.session import ChargeState, Closing, Exit, Session, SessionRequest, SessionStatus

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
WEEK = timedelta(days=7)


def start(**fields: Any) -> Session:
    request = SessionRequest(
        **{"kind": "webinar", "resource_id": "w1", "subject_id": "u1", **fields}
    )
    return Session.start("t", "s", request, now=NOW)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "Webinar"}, "kind"),
        ({"kind": "web inar"}, "kind"),
        ({"kind": ""}, "kind"),
        ({"kind": "a" * 65}, "kind"),
        ({"resource_id": ""}, "resource_id"),
        ({"resource_id": "r" * 201}, "resource_id"),
        ({"resource_id": "w\x001"}, "resource_id"),
        ({"subject_id": ""}, "subject_id"),
        ({"subject_id": "u" * 201}, "subject_id"),
        ({"subject_id": None}, "client_key"),
        ({"subject_id": None, "client_key": ""}, "client_key"),
        ({"subject_id": None, "client_key": "k" * 201}, "client_key"),
        ({"started_at": NOW + 5 * MINUTE + timedelta(seconds=1)}, "started_at"),
        ({"started_at": datetime(2026, 11, 24, 12, 0)}, "started_at"),
    ],
    ids=lambda value: repr(value)[:40],
)
def test_a_start_that_breaks_a_rule_names_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        start(**fields)
    assert refused.value.field == field


@pytest.mark.parametrize("kind", ["webinar", "mock_exam", "video.call-2", "k" * 64])
def test_kinds_are_short_lowercase_names(kind: str) -> None:
    assert start(kind=kind).kind == kind


def test_an_anonymous_visitor_is_known_by_its_browser_key() -> None:
    session = start(subject_id=None, client_key="tab-42")
    assert session.is_anonymous and session.client_key == "tab-42"


def test_a_start_may_come_up_to_5_minutes_ahead_of_our_clock_in_any_offset() -> None:
    ahead = start(started_at=NOW + 5 * MINUTE)
    assert ahead.started_at == ahead.last_seen_at == NOW + 5 * MINUTE
    tokyo = start(started_at=datetime(2026, 11, 24, 20, 0, tzinfo=timezone(timedelta(hours=9))))
    assert tokyo.started_at == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    assert tokyo.started_at.tzinfo is UTC


def test_a_start_without_a_time_starts_now() -> None:
    session = start()
    assert session.started_at == session.last_seen_at == NOW
    assert session.status is SessionStatus.ACTIVE and session.charge_state is ChargeState.NONE


def test_attributes_from_the_request_context_yield_to_the_clients() -> None:
    session = start(attributes={"ip": "10.0.0.1"}, context={"ip": "1.2.3.4", "user_agent": "X"})
    assert session.attributes == {"ip": "10.0.0.1", "user_agent": "X"}


def test_a_replay_matches_what_the_client_said_not_what_the_transport_added() -> None:
    session = start(attributes={"app_version": "2.1"}, context={"ip": "1.2.3.4"})
    assert session.matches(
        SessionRequest("webinar", "w1", "u1", attributes={"app_version": "2.1"}, context={})
    )
    assert session.matches(
        SessionRequest(
            "webinar", "w1", "u1", started_at=NOW.astimezone(timezone(timedelta(hours=-5)))
        )
    )


@pytest.mark.parametrize(
    "changed",
    [
        {"kind": "practice"},
        {"resource_id": "w2"},
        {"subject_id": "u2"},
        {"subject_id": None, "client_key": "tab-1"},
        {"started_at": NOW - MINUTE},
        {"attributes": {"app_version": "2.2"}},
    ],
    ids=repr,
)
def test_a_request_that_says_something_else_is_not_a_replay(changed: dict[str, Any]) -> None:
    session = start(attributes={"app_version": "2.1"})
    fields = {"kind": "webinar", "resource_id": "w1", "subject_id": "u1", **changed}
    assert not session.matches(SessionRequest(**fields))


def test_heartbeats_move_the_last_sign_of_life_forward_never_back() -> None:
    session = start()
    assert session.heartbeat(NOW + 7 * MINUTE)
    assert not session.heartbeat(NOW + 2 * MINUTE)  # a late, out-of-order heartbeat
    assert session.last_seen_at == NOW + 7 * MINUTE


def test_closing_is_final_later_exits_change_nothing_and_heartbeats_conflict() -> None:
    session = start()
    assert session.close(Exit(at=NOW + 3 * MINUTE, usage={"seconds": 180})) is Closing.CLOSED
    assert session.duration_seconds == 180
    assert session.charge_state is ChargeState.NOT_CHARGED

    later = Exit(at=NOW + 9 * MINUTE, status=SessionStatus.FAILED, usage={"seconds": 1})
    assert session.close(later, now=NOW + 9 * MINUTE, window=WEEK) is Closing.REPLAY
    assert (session.status, session.ended_at, session.usage) == (
        SessionStatus.COMPLETED,
        NOW + 3 * MINUTE,
        {"seconds": 180},
    )
    with pytest.raises(Conflict):
        session.heartbeat(NOW + 10 * MINUTE)


def test_an_exit_before_the_start_is_refused_and_leaves_the_session_open() -> None:
    session = start()
    with pytest.raises(InvalidInput) as refused:
        session.close(Exit(at=NOW - timedelta(seconds=1)))
    assert refused.value.field == "at"
    assert session.is_active and session.ended_at is None


def test_an_exit_adds_its_usage_to_what_events_reported() -> None:
    session = start()
    session.add_usage({"tokens": 100, "cost_usd": Decimal("0.1")})
    session.close(Exit(at=NOW + MINUTE, usage={"tokens": 20, "cost_usd": Decimal("0.2")}))
    assert session.usage == {"tokens": 120, "cost_usd": Decimal("0.3")}


@pytest.mark.parametrize(
    ("status", "rated", "subject", "state"),
    [
        (SessionStatus.COMPLETED, True, "u1", ChargeState.PENDING),
        (SessionStatus.ABANDONED, True, "u1", ChargeState.PENDING),
        (SessionStatus.TIMED_OUT, True, "u1", ChargeState.PENDING),
        (SessionStatus.CANCELLED, True, "u1", ChargeState.NOT_CHARGED),
        (SessionStatus.FAILED, True, "u1", ChargeState.NOT_CHARGED),
        (SessionStatus.COMPLETED, False, "u1", ChargeState.NOT_CHARGED),
        (SessionStatus.COMPLETED, True, None, ChargeState.NOT_CHARGED),
    ],
)
def test_a_closed_session_awaits_a_charge_only_when_it_is_charged(
    status: SessionStatus, rated: bool, subject: str | None, state: ChargeState
) -> None:
    session = start(subject_id=subject, client_key="tab-1")
    session.close(Exit(at=NOW, status=status), frozenset({"webinar"} if rated else ()))
    assert session.charge_state is state


def test_the_reaper_ends_a_session_at_its_last_sign_of_life() -> None:
    session = start()
    session.heartbeat(NOW + 7 * MINUTE)
    session.close(session.time_out())
    assert session.status is SessionStatus.TIMED_OUT
    assert session.ended_at == NOW + 7 * MINUTE and session.duration_seconds == 420


def test_an_exit_time_without_an_offset_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        Exit(at=datetime(2026, 11, 24, 12, 0))
    assert refused.value.field == "at"


def test_a_copy_shares_nothing_either_may_change() -> None:
    """What a process remembers of a session is a copy, and so is what it hands out of it
    (adapters.sqlalchemy.remembered_sessions): a change to one never reaches the other."""
    session = start(attributes={"room": "a"})
    session.usage = {"taps": 1, "cost": Decimal("0.5")}
    session.event_gaps, session.deleted_events = [(2, 3)], [(5, 5)]
    session.summary = {"score": {"total": 3, "parts": [1, 2]}}
    copied = session.copy()
    assert copied == session
    for field in dataclasses.fields(Session):
        value = getattr(session, field.name)
        if isinstance(value, list | dict):
            assert getattr(copied, field.name) is not value, field.name
    copied.summary["score"]["parts"].append(3)  # type: ignore[index]
    copied.attributes["room"] = "b"
    assert session.summary == {"score": {"total": 3, "parts": [1, 2]}}
    assert session.attributes == {"room": "a"}
