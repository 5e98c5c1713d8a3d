"""Sessions through the API: start, replay, heartbeat, exit (also as a beacon), read, list."""

import uuid
from datetime import UTC, datetime, timedelta

from domain.clock import to_the_millisecond
from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_a_session_starts_and_reads_back(api: Api) -> None:
    started = api.client.post(
        "/v1/sessions",
        json={
            "kind": "webinar",
            "resource_id": "webinar-1",
            "subject_id": "user-1",
            "attributes": {"app_version": "3.2", "tab": 1},
        },
        headers={**api.app, "User-Agent": "Firefox/140", "Referer": "https://example.test/"},
    )

    assert started.status_code == 201, started.text
    session = started.json()
    assert session["status"] == "active"
    assert session["ended_at"] is None and session["duration_seconds"] is None
    assert session["charge_state"] == "none" and session["charge"] is None
    assert session["started_at"].endswith("Z")
    assert session["attributes"]["user_agent"] == "Firefox/140"
    assert session["attributes"]["referrer"] == "https://example.test/"
    assert session["attributes"]["app_version"] == "3.2" and "ip" in session["attributes"]
    # The start alone says how long the session may stay silent (the tenant's default here).
    assert session.pop("idle_timeout_seconds") == 300
    read = api.client.get(f"/v1/sessions/{session['id']}", headers=api.app)
    assert read.status_code == 200 and read.json() == session


def test_the_same_id_and_content_is_a_replay_and_different_content_a_conflict(api: Api) -> None:
    session_id = str(uuid.uuid4())
    body = {"id": session_id, "kind": "practice", "resource_id": "set-9", "subject_id": "u"}

    first = api.client.post("/v1/sessions", json=body, headers=api.app)
    again = api.client.post("/v1/sessions", json=body, headers=api.app)
    other = api.client.post("/v1/sessions", json={**body, "resource_id": "set-10"}, headers=api.app)

    assert first.status_code == 201
    assert again.status_code == 200 and again.json() == first.json()
    assert_error(other, 409, "conflict")


def test_an_anonymous_visitor_needs_a_browser_key(api: Api) -> None:
    missing = api.client.post(
        "/v1/sessions", json={"kind": "webinar", "resource_id": "w"}, headers=api.app
    )
    assert invalid_fields(missing) == ["client_key"]
    assert api.start(subject_id=None, client_key="browser-1")["subject_id"] is None


def test_heartbeats_move_last_seen_forward(api: Api) -> None:
    session = api.start(started_at=iso(datetime.now(UTC) - timedelta(hours=1)))
    later = to_the_millisecond(datetime.now(UTC) - timedelta(minutes=10))

    beat = api.client.post(
        f"/v1/sessions/{session['id']}/heartbeat", json={"at": iso(later)}, headers=api.app
    )
    earlier = api.client.post(
        f"/v1/sessions/{session['id']}/heartbeat",
        json={"at": session["started_at"]},
        headers=api.app,
    )

    assert beat.status_code == 200 and beat.json()["last_seen_at"] == iso(later)
    assert earlier.json()["last_seen_at"] == iso(later)


def test_an_exit_closes_the_session_and_a_second_exit_replays_it(api: Api) -> None:
    session = api.start(started_at=iso(datetime.now(UTC) - timedelta(hours=1)))
    at = datetime.fromisoformat(session["started_at"]) + timedelta(minutes=25)

    ended = api.client.post(
        f"/v1/sessions/{session['id']}/exit",
        json={
            "at": iso(at),
            "status": "abandoned",
            "reason": "closed the tab",
            "summary": {"funnel": ["lobby", "talk"]},
            "usage": {"seconds": 1500, "cost_usd": "0.25"},
        },
        headers=api.app,
    )
    again = api.client.post(
        f"/v1/sessions/{session['id']}/exit", json={"usage": {"seconds": 99}}, headers=api.app
    )

    assert ended.status_code == 200, ended.text
    body = ended.json()
    assert body["status"] == "abandoned" and body["ended_at"] == iso(at)
    assert body["duration_seconds"] == 1500.0
    assert body["usage"] == {"seconds": 1500, "cost_usd": "0.25"}
    assert body["summary"] == {"funnel": ["lobby", "talk"]}
    assert body["charge_state"] == "not_charged"
    assert again.status_code == 200 and again.json() == body


def test_a_beacon_exit_sent_as_text_plain_counts(api: Api) -> None:
    session = api.start()

    beacon = api.client.post(
        f"/v1/sessions/{session['id']}/exit",
        content=b'{"status": "abandoned"}',
        headers={**api.app, "Content-Type": "text/plain;charset=UTF-8"},
    )
    empty = api.client.post(f"/v1/sessions/{api.start()['id']}/exit", headers=api.app)

    assert beacon.status_code == 200 and beacon.json()["status"] == "abandoned"
    assert empty.status_code == 200 and empty.json()["status"] == "completed"


def test_exits_and_heartbeats_that_cannot_be_are_refused(api: Api) -> None:
    session = api.start()
    before = datetime.fromisoformat(session["started_at"]) - timedelta(minutes=1)
    path = f"/v1/sessions/{session['id']}"

    assert invalid_fields(
        api.client.post(f"{path}/exit", json={"at": iso(before)}, headers=api.app)
    ) == ["at"]
    assert invalid_fields(
        api.client.post(f"{path}/exit", json={"status": "timed_out"}, headers=api.app)
    ) == ["status"]
    assert invalid_fields(
        api.client.post(f"{path}/exit", json={"reason": "room_finished"}, headers=api.app)
    ) == ["reason"]
    api.client.post(f"{path}/exit", json={}, headers=api.app)
    assert_error(api.client.post(f"{path}/heartbeat", headers=api.app), 409, "conflict")


def test_unknown_malformed_and_foreign_sessions_are_not_found(api: Api) -> None:
    foreign = api.client.post(
        "/v1/sessions",
        json={"kind": "kiosk", "resource_id": "booth", "subject_id": "k"},
        headers=api.other_tenant,
    ).json()

    for session_id in (str(uuid.uuid4()), "not-a-uuid", foreign["id"]):
        assert_error(
            api.client.get(f"/v1/sessions/{session_id}", headers=api.app), 404, "not_found"
        )
        assert_error(
            api.client.post(f"/v1/sessions/{session_id}/exit", headers=api.app), 404, "not_found"
        )
        assert_error(
            api.client.post(f"/v1/sessions/{session_id}/heartbeat", headers=api.app),
            404,
            "not_found",
        )


def test_bad_session_input_names_the_field(api: Api) -> None:
    base = {"kind": "webinar", "resource_id": "w", "subject_id": "u"}
    ahead = datetime.now(UTC) + timedelta(minutes=6)
    cases = [
        ({**base, "kind": "Web Inar!"}, "kind"),
        ({**base, "kind": {"$gt": ""}}, "kind"),
        ({**base, "resource_id": ""}, "resource_id"),
        ({**base, "resource_id": "r" * 201}, "resource_id"),
        ({**base, "subject_id": 42}, "subject_id"),
        ({**base, "started_at": "2026-11-24T10:00:00"}, "started_at"),
        ({**base, "started_at": iso(ahead)}, "started_at"),
        ({**base, "id": "not-a-uuid"}, "id"),
        ({**base, "attributes": {"nested": {"a": 1}}}, "attributes[...]"),
        ({"resource_id": "w", "subject_id": "u"}, "kind"),
    ]
    for body, field in cases:
        response = api.client.post("/v1/sessions", json=body, headers=api.app)
        assert invalid_fields(response) == [field], body


def test_malformed_json_is_a_400(api: Api) -> None:
    response = api.client.post(
        "/v1/sessions",
        content=b'{"kind": "webinar",',
        headers={**api.app, "Content-Type": "application/json"},
    )
    assert_error(response, 400, "malformed_json")


def test_sessions_are_listed_newest_first_with_filters_and_pages(api: Api) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    made = [
        api.start(started_at=iso(t0 + timedelta(minutes=i)), kind="quiz" if i % 2 else "webinar")
        for i in range(5)
    ]
    api.client.post(f"/v1/sessions/{made[0]['id']}/exit", json={}, headers=api.app)
    api.client.post(
        "/v1/sessions",
        json={"kind": "webinar", "resource_id": "x", "subject_id": "y"},
        headers=api.other_tenant,
    )

    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.client.get("/v1/sessions", params=params, headers=api.app).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    def ids(**params: str) -> list[str]:
        response = api.client.get("/v1/sessions", params=params, headers=api.app)
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()["items"]]

    assert seen == [s["id"] for s in reversed(made)]
    assert ids(kind="quiz") == [made[3]["id"], made[1]["id"]]
    assert ids(status="completed") == [made[0]["id"]]
    assert ids(**{"from": iso(t0 + timedelta(minutes=3))}) == [made[4]["id"], made[3]["id"]]
    assert ids(to=iso(t0 + timedelta(minutes=1))) == [made[0]["id"]]
    assert invalid_fields(api.client.get("/v1/sessions?limit=0", headers=api.app)) == ["limit"]
    assert invalid_fields(api.client.get("/v1/sessions?limit=501", headers=api.app)) == ["limit"]
    assert invalid_fields(api.client.get("/v1/sessions?limit=ten", headers=api.app)) == ["limit"]
    assert invalid_fields(api.client.get("/v1/sessions?cursor=zzz", headers=api.app)) == ["cursor"]
    assert invalid_fields(api.client.get("/v1/sessions?status=paused", headers=api.app)) == [
        "status"
    ]
    for bound in ("from", "to"):
        for bad in ("2026-11-24T10:00:00", "yesterday"):
            response = api.client.get("/v1/sessions", params={bound: bad}, headers=api.app)
            assert invalid_fields(response) == [bound], (bound, bad)


def test_sessions_are_listed_by_an_anonymous_browsers_client_key(api: Api) -> None:
    first = api.start(subject_id=None, client_key="tab-1")
    api.start(subject_id=None, client_key="tab-2")
    second = api.start(subject_id=None, client_key="tab-1")

    listed = api.client.get("/v1/sessions", params={"client_key": "tab-1"}, headers=api.app)

    assert listed.status_code == 200
    assert {s["id"] for s in listed.json()["items"]} == {first["id"], second["id"]}
    assert all(s["client_key"] == "tab-1" for s in listed.json()["items"])
