"""Steps of features/sessions.feature. Steps are synchronous: pytest-bdd cannot await."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.app_client import Api

scenarios("sessions.feature")


def minutes_after(session: dict[str, Any], minutes: int) -> str:
    return (datetime.fromisoformat(session["started_at"]) + timedelta(minutes=minutes)).isoformat()


@given(parsers.parse('viewer "{name}" joined webinar "{webinar}" {minutes:d} minutes ago'))
def joined(api: Api, visits: dict[str, Any], name: str, webinar: str, minutes: int) -> None:
    started_at = datetime.now(UTC) - timedelta(minutes=minutes)
    visits[name] = api.start(
        resource_id=webinar, subject_id=name, started_at=started_at.isoformat()
    )


@given(
    parsers.parse('the tab of "{name}" last gave a sign of life {minutes:d} minutes after joining')
)
def last_heartbeat(api: Api, visits: dict[str, Any], name: str, minutes: int) -> None:
    session = visits[name]
    response = api.client.post(
        f"/v1/sessions/{session['id']}/heartbeat",
        json={"at": minutes_after(session, minutes)},
        headers=api.ingest,
    )
    assert response.status_code == 200, response.text


@when(parsers.parse('"{name}" leaves {minutes:d} minutes after joining'))
def leaves(api: Api, visits: dict[str, Any], name: str, minutes: int) -> None:
    session = visits[name]
    response = api.client.post(
        f"/v1/sessions/{session['id']}/exit",
        json={"at": minutes_after(session, minutes)},
        headers=api.ingest,
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def exits() -> list[dict[str, Any]]:
    """What each exit of one visit answered, in order."""
    return []


@when(parsers.parse('the tab of "{name}" closes and the browser sends the exit as a beacon'))
def beacon(api: Api, visits: dict[str, Any], exits: list[Any], name: str) -> None:
    response = api.client.post(
        f"/v1/sessions/{visits[name]['id']}/exit",
        content=b'{"status": "abandoned"}',
        headers={**api.ingest, "Content-Type": "text/plain;charset=UTF-8"},
    )
    exits.append(response.json())


@when(parsers.parse('the same exit of "{name}" arrives a second time by fetch'))
def second_exit(api: Api, visits: dict[str, Any], exits: list[Any], name: str) -> None:
    response = api.client.post(
        f"/v1/sessions/{visits[name]['id']}/exit", json={"status": "abandoned"}, headers=api.ingest
    )
    exits.append(response.json())


@when("the reaper runs")
def reaper_runs(api: Api) -> None:
    api.run(api.container.reap_stale_sessions())


@then(parsers.parse('the visit of "{name}" is {status}'))
def visit_status(api: Api, visits: dict[str, Any], name: str, status: str) -> None:
    session = api.client.get(f"/v1/sessions/{visits[name]['id']}", headers=api.ingest).json()
    assert session["status"] == status.replace(" ", "_")


@then(parsers.parse('the watch time of "{name}" is {seconds:d} seconds'))
def watch_time(api: Api, visits: dict[str, Any], name: str, seconds: int) -> None:
    session = api.client.get(f"/v1/sessions/{visits[name]['id']}", headers=api.ingest).json()
    assert session["duration_seconds"] == seconds


@then(parsers.parse('both exits report the same end of the visit of "{name}"'))
def same_end(exits: list[Any], name: str) -> None:
    first, second = exits
    assert first["ended_at"] is not None
    assert (first["ended_at"], first["duration_seconds"]) == (
        second["ended_at"],
        second["duration_seconds"],
    )


@when(
    parsers.parse('a visitor who is not signed in opens webinar "{webinar}" without a browser key'),
    target_fixture="attempt",
)
def anonymous_without_key(api: Api, webinar: str) -> Any:
    return api.client.post(
        "/v1/sessions", json={"kind": "webinar", "resource_id": webinar}, headers=api.ingest
    )


@then("the visit is refused because a browser key is required")
def refused_for_key(attempt: Any) -> None:
    assert attempt.status_code == 422
    assert [f["field"] for f in attempt.json()["fields"]] == ["client_key"]


@when(
    parsers.parse(
        'a visitor who is not signed in opens webinar "{webinar}" with browser key "{key}"'
    ),
    target_fixture="attempt",
)
def anonymous_with_key(api: Api, webinar: str, key: str) -> Any:
    return api.client.post(
        "/v1/sessions",
        json={"kind": "webinar", "resource_id": webinar, "client_key": key},
        headers=api.ingest,
    )


@then(parsers.parse('the visit is recorded for browser key "{key}"'))
def recorded_for_key(attempt: Any, key: str) -> None:
    assert attempt.status_code == 201
    assert attempt.json()["client_key"] == key and attempt.json()["subject_id"] is None


@when(parsers.parse('another team looks up the visit of "{name}"'), target_fixture="attempt")
def other_team_looks(api: Api, visits: dict[str, Any], name: str) -> Any:
    return api.client.get(f"/v1/sessions/{visits[name]['id']}", headers=api.other_tenant)


@then("the visit is not found")
def not_found(attempt: Any) -> None:
    assert attempt.status_code == 404 and attempt.json()["error"] == "not_found"
