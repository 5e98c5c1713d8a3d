"""Hostile review of the batch's fast decoding (entrypoints/http/batches.read_items decoding every
event into domain.events.Event in one pass): the same validation at full speed, per event, with
the documented codes, never a 500."""

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.app_client import Api
from tests.http.envelope import assert_error

AT = f"{datetime.now(UTC) - timedelta(minutes=1):%Y-%m-%dT%H:%M:%SZ}"


def event(session: dict[str, Any], n: int, **fields: Any) -> dict[str, Any]:
    return {"session_id": session["id"], "sequence_no": n, "type": "tap", "at": AT, **fields}


def send(api: Api, *events: Any) -> Any:
    return api.client.post("/v1/events/batch", json={"events": list(events)}, headers=api.app)


def send_raw(api: Api, body: str) -> Any:
    headers = {**api.app, "Content-Type": "application/json"}
    return api.client.post("/v1/events/batch", content=body, headers=headers)


def session_of(api: Api, session: dict[str, Any]) -> dict[str, Any]:
    return dict(api.client.get(f"/v1/sessions/{session['id']}", headers=api.app).json())


def test_meter_quantities_beyond_decimal_range_are_refused_per_event_never_a_500(
    api: Api,
) -> None:
    # API.md Wave 2 "Bounded instants and numbers": "→ 422 otherwise, never a 500"; a bad field
    # fails its event alone ("Valid events are stored even when others in the batch fail").
    session = api.start()
    for n, quantity in enumerate(('"1e999999999"', "1e999999999", '"-1e1000000"'), start=1):
        good = f'{{"session_id": "{session["id"]}", "sequence_no": {10 + n}, "type": "t", "at": "{AT}"}}'
        bad = (
            f'{{"session_id": "{session["id"]}", "sequence_no": {n}, "type": "t", "at": "{AT}",'
            f' "meters": {{"bytes": {quantity}}}}}'
        )
        response = send_raw(api, f'{{"events": [{good}, {bad}]}}')

        assert response.status_code == 200, (quantity, response.status_code, response.text)
        body = response.json()
        assert (body["inserted"], body["failed"]) == (1, 1), body
        assert body["errors"][0]["index"] == 1
        assert body["errors"][0]["error"].startswith("validation_error: meters.bytes"), body


def test_meters_that_are_not_finite_non_negative_exact_quantities_fail_alone(api: Api) -> None:
    session = api.start()
    bad_meters: list[Any] = [
        "NaN",
        "Infinity",
        "-Infinity",
        "sNaN",
        -1,
        "-0.5",
        10**9,
        2**64,
        10**30,
        "0.0000000001",  # ten decimal places
        "abc",
        True,
        None,
        [1],
    ]
    events = [event(session, n, meters={"bytes": q}) for n, q in enumerate(bad_meters, start=1)]
    events.append(event(session, 100, meters={"bytes": "0.000000001", "taps": 3}))

    response = send(api, *events)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["inserted"], body["failed"]) == (1, len(bad_meters)), body
    assert all(e["error"].startswith("validation_error: meters") for e in body["errors"]), body
    assert session_of(api, session)["usage"] == {"bytes": "0.000000001", "taps": 3}


def test_a_field_of_the_wrong_type_is_refused_whether_or_not_the_batch_holds_a_bad_event(
    api: Api,
) -> None:
    # API.md: event { "sequence_no": int ≥ 1, "at": ts, ... } ; the same event must get the same
    # answer whatever else is in its batch.
    for field, value in (("sequence_no", "1"), ("sequence_no", 1.0), ("at", 1764849600)):
        alone = api.start()
        with_bad = api.start()

        fast = send(api, {**event(alone, 1), field: value}).json()
        slow = send(api, {**event(with_bad, 1), field: value}, {"not": "an event"}).json()

        assert (slow["inserted"], slow["failed"]) == (0, 2), (field, value, slow)
        assert slow["errors"][0]["error"].startswith(f"validation_error: {field}")
        assert (fast["inserted"], fast["failed"]) == (0, 1), (field, value, fast)
        assert session_of(api, alone)["event_count"] == 0, (field, value)


def test_a_decimal_string_meter_is_kept_alike_whether_or_not_the_batch_holds_a_bad_event(
    api: Api,
) -> None:
    # A quantity's kind (integer or decimal string) must not depend on the batch's other events.
    alone, with_bad = api.start(), api.start()

    send(api, event(alone, 1, meters={"cost_usd": "5"}))
    send(api, event(with_bad, 1, meters={"cost_usd": "5"}), {"not": "an event"})

    assert session_of(api, alone)["usage"] == session_of(api, with_bad)["usage"]


def test_a_number_repeated_in_a_batch_under_another_spelling_of_its_session_is_a_duplicate(
    api: Api,
) -> None:
    session = api.start()
    shouted = {**event(session, 1, meters={"taps": 1}), "session_id": session["id"].upper()}

    body = send(api, event(session, 1, meters={"taps": 1}), shouted).json()

    assert (body["inserted"], body["duplicates"], body["failed"]) == (1, 1, 0), body
    assert session_of(api, session)["usage"] == {"taps": 1}


def test_instants_outside_the_bounds_fail_alone_with_their_codes(api: Api) -> None:
    session = api.start()
    far_future = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    long_ago = (datetime.now(UTC) - timedelta(days=8)).isoformat()
    events = [
        event(session, 1, at=far_future),
        event(session, 2, at="1999-12-31T23:59:59Z"),
        event(session, 3, at="9999-12-31T23:59:59+14:00"),
        event(session, 4, at="0001-01-01T00:00:00-14:00"),
        event(session, 5, at=long_ago),
        event(session, 6, at="2026-11-24T12:00:00"),
        event(session, 7),
    ]

    response = send(api, *events)

    assert response.status_code == 200, response.text
    body = response.json()
    errors = {e["index"]: e["error"] for e in body["errors"]}
    assert body["inserted"] == 1, body
    assert errors[4] == "late", errors
    assert all(errors[i].startswith("validation_error: at") for i in (0, 1, 2, 3, 5)), errors


def test_unknown_foreign_and_malformed_session_ids_fail_alone(api: Api) -> None:
    session = api.start()
    foreign = api.client.post(
        "/v1/sessions",
        json={"kind": "kiosk", "resource_id": "b", "subject_id": "k"},
        headers=api.other_tenant,
    ).json()
    events = [
        event(foreign, 1),
        {**event(session, 1), "session_id": "not-a-uuid"},
        {**event(session, 1), "session_id": "x" * 10_000},
        {**event(session, 1), "session_id": 5},
        {**event(session, 1), "type": "t" * 65},
        {**event(session, 1), "label": "l" * 100_000},
        event(session, 1),
    ]

    body = send(api, *events).json()

    assert (body["inserted"], body["failed"]) == (1, 6), body
    assert body["errors"][0]["error"] == "session_not_found"
    foreign_events = api.client.get(
        f"/v1/sessions/{foreign['id']}", headers=api.other_tenant
    ).json()
    assert foreign_events["event_count"] == 0


def test_an_empty_batch_or_one_over_the_limit_stores_nothing(api: Api) -> None:
    session = api.start()
    empty = send(api)
    over = send(api, *(event(session, n) for n in range(1, 102)))

    assert empty.status_code in (200, 422), empty.text
    if empty.status_code == 200:
        assert empty.json() == {"inserted": 0, "duplicates": 0, "failed": 0, "errors": []}
    assert_error(over, 413, "payload_too_large")
    assert session_of(api, session)["event_count"] == 0
