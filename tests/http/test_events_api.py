"""Event batches through the API: partial failure, retries, limits, gaps, listing, distribution."""

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields

# A minute before the tests began: never in the future, never late.
AT = f"{datetime.now(UTC) - timedelta(minutes=1):%Y-%m-%dT%H:%M:%SZ}"


def after_now(minutes: int = 2) -> str:
    """Later than any end a client just chose, within the clock skew a client may have."""
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def event(session: dict[str, Any], n: int, **fields: Any) -> dict[str, Any]:
    return {"session_id": session["id"], "sequence_no": n, "type": "tap", "at": AT, **fields}


def send(api: Api, *events: dict[str, Any]) -> Any:
    return api.client.post("/v1/events/batch", json={"events": list(events)}, headers=api.app)


def test_valid_events_are_stored_even_when_others_in_the_batch_fail(api: Api) -> None:
    session = api.start()
    ended = api.start()
    api.client.post(f"/v1/sessions/{ended['id']}/exit", json={}, headers=api.app)
    unknown = {"id": "0b5e6c1a-1111-4111-8111-111111111111"}

    response = send(
        api,
        event(session, 1, meters={"cost_usd": 0.1, "tokens": 12}),
        event(unknown, 1),
        {**event(ended, 1), "at": after_now()},  # its client ended it before this
        event(session, 0),
        {**event(session, 3), "at": "2026-11-24T12:00:00"},
        {**event(session, 4), "label": {"$gt": ""}},
        event(session, 2, label="red", category="quiz", data={"q": 7}),
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["inserted"], body["duplicates"], body["failed"]) == (2, 0, 5)
    errors = {e["index"]: e["error"] for e in body["errors"]}
    assert errors[1] == "session_not_found" and errors[2] == "session_ended"
    assert errors[3].startswith("validation_error: sequence_no")
    assert errors[4].startswith("validation_error: at")
    assert errors[5].startswith("validation_error: label")
    stored = api.client.get(f"/v1/sessions/{session['id']}", headers=api.app).json()
    assert stored["usage"] == {"cost_usd": "0.1", "tokens": 12}
    assert stored["event_count"] == 2


def test_a_retried_batch_counts_nothing_twice(api: Api) -> None:
    session = api.start()
    batch = [event(session, n, meters={"photos": 1}) for n in (1, 2, 3)]

    first = send(api, *batch).json()
    retry = send(api, *batch).json()

    assert (first["inserted"], first["duplicates"]) == (3, 0)
    assert (retry["inserted"], retry["duplicates"], retry["failed"]) == (0, 3, 0)
    stored = api.client.get(f"/v1/sessions/{session['id']}", headers=api.app).json()
    assert stored["usage"] == {"photos": 3}


def test_a_lost_event_shows_up_as_a_gap(api: Api) -> None:
    session = api.start()

    send(api, *(event(session, n) for n in (1, 2, 4, 5, 9)))

    stored = api.client.get(f"/v1/sessions/{session['id']}", headers=api.app).json()
    assert stored["event_gaps"] == [[3, 3], [6, 8]]


def test_a_batch_over_the_limit_is_refused_whole(api: Api) -> None:
    session = api.start()

    response = send(api, *(event(session, n) for n in range(1, 102)))

    assert_error(response, 413, "payload_too_large")
    events = api.client.get(f"/v1/sessions/{session['id']}/events", headers=api.app).json()
    assert events["items"] == []


def test_the_batch_limit_is_the_tenants_setting(api: Api) -> None:
    session = api.start()
    changed = api.client.put("/v1/settings", json={"max_batch_events": 2}, headers=api.admin)
    assert changed.status_code == 200, changed.text

    refused = send(api, event(session, 1), event(session, 2), {"not": "an event"})
    accepted = send(api, event(session, 1), event(session, 2))

    assert_error(refused, 413, "payload_too_large")
    assert accepted.status_code == 200 and accepted.json()["inserted"] == 2


def test_a_body_over_one_mebibyte_is_refused_and_nothing_stored(api: Api) -> None:
    session = api.start()
    padding = "x" * (1024 * 1024)

    response = send(api, event(session, 1, data={"padding": padding}))

    assert_error(response, 413, "payload_too_large")
    stored = api.client.get(f"/v1/sessions/{session['id']}", headers=api.app).json()
    assert stored["event_count"] == 0


def test_a_batch_that_is_not_a_batch_is_refused(api: Api) -> None:
    assert invalid_fields(
        api.client.post("/v1/events/batch", json={"events": {}}, headers=api.app)
    ) == ["events"]
    assert invalid_fields(api.client.post("/v1/events/batch", json={}, headers=api.app)) == [
        "events"
    ]


def test_events_are_listed_in_sequence_order_a_page_at_a_time(api: Api) -> None:
    session = api.start()
    labels = ["red", "green", "red", "yellow", "red"]
    send(api, *(event(session, n, label=label) for n, label in enumerate(labels, start=1)))
    path = f"/v1/sessions/{session['id']}"

    first = api.client.get(f"{path}/events", params={"limit": 3}, headers=api.app).json()
    rest = api.client.get(
        f"{path}/events", params={"limit": 3, "cursor": first["next_cursor"]}, headers=api.app
    ).json()
    red = api.client.get(f"{path}/events", params={"label": "red"}, headers=api.app).json()

    assert [e["sequence_no"] for e in first["items"]] == [1, 2, 3]
    assert [e["sequence_no"] for e in rest["items"]] == [4, 5] and rest["next_cursor"] is None
    assert [e["sequence_no"] for e in red["items"]] == [1, 3, 5]
    assert first["items"][0] == {
        "session_id": session["id"],
        "sequence_no": 1,
        "type": "tap",
        "at": AT,
        "category": None,
        "label": "red",
        "data": None,
        "meters": {},
    }


def test_the_distribution_of_labels_counts_and_percentages(api: Api) -> None:
    session = api.start()
    labels = ["red", "green", "red", "yellow", None]
    send(api, *(event(session, n, label=label) for n, label in enumerate(labels, start=1)))

    response = api.client.get(
        f"/v1/sessions/{session['id']}/distribution", params={"field": "label"}, headers=api.app
    )

    assert response.json() == {
        "total": 4,
        "counts": {"red": 2, "green": 1, "yellow": 1},
        "percentages": {"red": 50.0, "green": 25.0, "yellow": 25.0},
    }
    assert invalid_fields(
        api.client.get(
            f"/v1/sessions/{session['id']}/distribution",
            params={"field": "data"},
            headers=api.app,
        )
    ) == ["field"]


def test_events_of_unknown_sessions_cannot_be_read(api: Api) -> None:
    foreign = api.client.post(
        "/v1/sessions",
        json={"kind": "kiosk", "resource_id": "b", "subject_id": "k"},
        headers=api.other_tenant,
    ).json()
    for path in ("events", "distribution"):
        response = api.client.get(f"/v1/sessions/{foreign['id']}/{path}", headers=api.app)
        assert_error(response, 404, "not_found")


def test_tiny_decimals_leave_as_plain_digits(api: Api) -> None:
    session = api.start()

    ended = api.client.post(
        f"/v1/sessions/{session['id']}/exit",
        json={"usage": {"cost_usd": "0.000000001"}},
        headers=api.app,
    )

    assert ended.json()["usage"] == {"cost_usd": "0.000000001"}
