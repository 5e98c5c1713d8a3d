"""Steps of features/sessions.feature. Steps are synchronous: pytest-bdd cannot await.

Time is the app's fake clock: a viewer joins "now", the story moves the clock, and exits and
heartbeats carry no time of their own, as a browser's do.
"""

import uuid
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from application.sessions.reap_stale_sessions import ReapStaleSessionsCommand
from tests.app_client import Api
from tests.fakes import FakeClock

scenarios("sessions.feature")

Visits = dict[str, dict[str, Any]]


def visit_path(visits: Visits, name: str, action: str = "") -> str:
    return f"/v1/sessions/{visits[name]['id']}{action}"


def current(api: Api, visits: Visits, name: str) -> dict[str, Any]:
    response = api.client.get(visit_path(visits, name), headers=api.app)
    assert response.status_code == 200, response.text
    return dict(response.json())


def sign_of_life(api: Api, visits: Visits, name: str) -> None:
    response = api.client.post(visit_path(visits, name, "/heartbeat"), json={}, headers=api.app)
    assert response.status_code == 200, response.text


@given(parsers.parse('viewer "{name}" joins webinar "{webinar}"'))
def joins(api: Api, clock: FakeClock, visits: Visits, name: str, webinar: str) -> None:
    # Asking for the clock puts the app on it before the visit starts.
    visits[name] = api.start(resource_id=webinar, subject_id=name)


@when(parsers.parse('"{name}" leaves'))
def leaves(api: Api, visits: Visits, name: str) -> None:
    response = api.client.post(visit_path(visits, name, "/exit"), json={}, headers=api.app)
    assert response.status_code == 200, response.text


@pytest.fixture
def exits() -> list[dict[str, Any]]:
    """What each exit of one visit answered, in order."""
    return []


@when(
    parsers.parse(
        '"{name}" closes the tab after {count:d} chat messages and the browser sends the exit '
        "as a beacon"
    )
)
def beacon(api: Api, visits: Visits, exits: list[Any], name: str, count: int) -> None:
    # navigator.sendBeacon can send only text/plain without a CORS preflight.
    body = f'{{"status": "abandoned", "usage": {{"chat_messages": {count}}}}}'
    response = api.client.post(
        visit_path(visits, name, "/exit"),
        content=body.encode(),
        headers={**api.app, "Content-Type": "text/plain;charset=UTF-8"},
    )
    assert response.status_code == 200, response.text
    exits.append(response.json())


@when(parsers.parse('the same exit of "{name}" arrives a second time by fetch'))
def second_exit(api: Api, visits: Visits, exits: list[Any], name: str) -> None:
    response = api.client.post(
        visit_path(visits, name, "/exit"),
        json={"status": "abandoned", "usage": {"chat_messages": 3}},
        headers=api.app,
    )
    assert response.status_code == 200, response.text
    exits.append(response.json())


@then(parsers.parse('both exits report the same end of the visit of "{name}"'))
def same_end(exits: list[Any], name: str) -> None:
    first, second = exits
    assert first["ended_at"] is not None
    assert (first["ended_at"], first["duration_seconds"]) == (
        second["ended_at"],
        second["duration_seconds"],
    )


@then(parsers.parse('the visit of "{name}" counts {count:d} chat messages'))
def chat_messages(api: Api, visits: Visits, name: str, count: int) -> None:
    assert current(api, visits, name)["usage"] == {"chat_messages": count}


@given(parsers.parse("both tabs send a sign of life every minute for {minutes:d} minutes"))
def both_alive(api: Api, clock: FakeClock, visits: Visits, minutes: int) -> None:
    for _ in range(minutes):
        clock.advance(60)
        for name in visits:
            sign_of_life(api, visits, name)


@when(
    parsers.parse(
        'the tab of "{dead}" dies while "{alive}" keeps watching for another {minutes:d} minutes'
    )
)
def one_dies(
    api: Api, clock: FakeClock, visits: Visits, dead: str, alive: str, minutes: int
) -> None:
    for _ in range(minutes):
        clock.advance(60)
        sign_of_life(api, visits, alive)


@when("the reaper runs")
def reaper_runs(api: Api) -> None:
    api.run(api.container.jobs.reap_stale_sessions(), ReapStaleSessionsCommand())


@then(parsers.parse('the visit of "{name}" is {status}'))
def visit_status(api: Api, visits: Visits, name: str, status: str) -> None:
    assert current(api, visits, name)["status"] == status.replace(" ", "_")


@then(parsers.parse('the watch time of "{name}" is {seconds:d} seconds'))
def watch_time(api: Api, visits: Visits, name: str, seconds: int) -> None:
    assert current(api, visits, name)["duration_seconds"] == seconds


@pytest.fixture
def starts() -> list[Any]:
    """The answers to each start of one visit, in order."""
    return []


@given(
    parsers.parse('viewer "{name}" joins webinar "{webinar}" with a visit id her browser made up')
)
def joins_with_id(
    api: Api, clock: FakeClock, visits: Visits, starts: list[Any], name: str, webinar: str
) -> None:
    body = {"id": str(uuid.uuid4()), "kind": "webinar", "resource_id": webinar, "subject_id": name}
    response = api.client.post("/v1/sessions", json=body, headers=api.app)
    assert response.status_code == 201, response.text
    visits[name] = response.json()
    starts.append(response)


@when("the answer was lost, so the browser starts the same visit again")
def start_again(api: Api, visits: Visits, starts: list[Any]) -> None:
    body = {k: starts[0].json()[k] for k in ("id", "kind", "resource_id", "subject_id")}
    starts.append(api.client.post("/v1/sessions", json=body, headers=api.app))


@then("the browser is told about the visit it started first")
def told_about_first(starts: list[Any]) -> None:
    first, again = starts
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["started_at"] == first.json()["started_at"]


@then(parsers.parse('"{name}" has {count:d} visit of webinar "{webinar}"'))
def visit_count(api: Api, name: str, count: int, webinar: str) -> None:
    response = api.client.get(
        "/v1/sessions", params={"subject_id": name, "resource_id": webinar}, headers=api.app
    )
    assert len(response.json()["items"]) == count


@when(
    parsers.parse('a visitor who is not signed in opens webinar "{webinar}" without a browser key'),
    target_fixture="attempt",
)
def anonymous_without_key(api: Api, webinar: str) -> Any:
    return api.client.post(
        "/v1/sessions", json={"kind": "webinar", "resource_id": webinar}, headers=api.app
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
        headers=api.app,
    )


@then(parsers.parse('the visit is recorded for browser key "{key}"'))
def recorded_for_key(attempt: Any, key: str) -> None:
    assert attempt.status_code == 201
    assert attempt.json()["client_key"] == key and attempt.json()["subject_id"] is None


@when(parsers.parse('another team looks up the visit of "{name}"'), target_fixture="attempt")
def other_team_looks(api: Api, visits: Visits, name: str) -> Any:
    return api.client.get(visit_path(visits, name), headers=api.other_tenant)


@then("the visit is not found")
def not_found(attempt: Any) -> None:
    assert attempt.status_code == 404 and attempt.json()["error"] == "not_found"
