"""Live sessions through the API: per-kind timeouts and the late-data window in settings, late
instants refused as `late`, corrections of a reaper's end, the running cost of a rated session."""

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from application.sessions.reap_stale_sessions import ReapStaleSessionsCommand
from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields

WEEK = timedelta(days=7)


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def ago(**delta: float) -> str:
    return iso(datetime.now(UTC) - timedelta(**delta))


def settings(api: Api, **changes: Any) -> Any:
    return api.client.put("/v1/settings", json=changes, headers=api.admin)


def reap(api: Api) -> None:
    api.run(api.container.jobs.reap_stale_sessions(), ReapStaleSessionsCommand())


def test_settings_take_per_kind_timeouts_a_cap_a_window_and_a_low_balance(api: Api) -> None:
    changed = settings(
        api,
        idle_timeouts={"livekit": 600, "recording": None},
        max_session_seconds=None,
        late_data_window_seconds=3600,
        low_balance_credits=50,
    )

    assert changed.status_code == 200, changed.text
    body = api.client.get("/v1/settings", headers=api.admin).json()
    assert body["idle_timeouts"] == {"livekit": 600, "recording": None}
    assert body["max_session_seconds"] is None
    assert (body["late_data_window_seconds"], body["low_balance_credits"]) == (3600, 50)
    assert body["idle_timeout_seconds"] == 300  # what was not sent keeps its value


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"idle_timeouts": {"kiosk": -5}}, "idle_timeouts.kiosk"),
        ({"idle_timeouts": {"kiosk": 8 * 24 * 3600}}, "idle_timeouts.kiosk"),
        ({"idle_timeouts": {"Kiosk Two": 60}}, "idle_timeouts.Kiosk Two"),
        ({"idle_timeouts": {"kiosk": "60"}}, "idle_timeouts.kiosk"),
        ({"idle_timeouts": [60]}, "idle_timeouts"),
        ({"late_data_window_seconds": 0}, "late_data_window_seconds"),
        ({"max_session_seconds": -1}, "max_session_seconds"),
    ],
)
def test_settings_out_of_shape_are_refused_naming_the_field(
    api: Api, changes: dict[str, Any], field: str
) -> None:
    assert invalid_fields(settings(api, **changes)) == [field]


def test_instants_older_than_the_window_are_late(api: Api) -> None:
    assert settings(api, late_data_window_seconds=3600).status_code == 200
    session = api.start()
    path = f"/v1/sessions/{session['id']}"

    start = api.client.post(
        "/v1/sessions",
        json={"kind": "webinar", "resource_id": "w", "subject_id": "u", "started_at": ago(hours=2)},
        headers=api.app,
    )
    heartbeat = api.client.post(f"{path}/heartbeat", json={"at": ago(hours=2)}, headers=api.app)
    exit = api.client.post(f"{path}/exit", json={"at": ago(hours=2)}, headers=api.app)

    for response in (start, heartbeat, exit):
        body = assert_error(response, 422, "late")
        assert body["fields"][0]["field"] in ("started_at", "at")
    assert api.client.get(path, headers=api.app).json()["status"] == "active"


def test_a_stored_start_replays_even_when_its_time_is_now_late(api: Api) -> None:
    session_id = str(uuid.uuid4())
    body = {
        "id": session_id,
        "kind": "webinar",
        "resource_id": "w",
        "subject_id": "u",
        "started_at": ago(minutes=50),
    }
    assert api.client.post("/v1/sessions", json=body, headers=api.app).status_code == 201
    assert settings(api, late_data_window_seconds=600).status_code == 200

    again = api.client.post("/v1/sessions", json=body, headers=api.app)

    assert again.status_code == 200 and again.json()["id"] == session_id


def test_events_too_old_are_late_and_events_from_the_future_invalid(api: Api) -> None:
    session = api.start()

    def event(n: int, at: str) -> dict[str, Any]:
        return {"session_id": session["id"], "sequence_no": n, "type": "tap", "at": at}

    response = api.client.post(
        "/v1/events/batch",
        json={
            "events": [
                event(1, ago(days=8)),
                event(2, ago(minutes=-10)),
                event(3, ago(seconds=1)),
            ]
        },
        headers=api.app,
    )

    body = response.json()
    assert (body["inserted"], body["failed"]) == (1, 2), body
    errors = {e["index"]: e["error"] for e in body["errors"]}
    assert errors[0] == "late"
    assert errors[1].startswith("validation_error: at") and "future" in errors[1]
    stored = api.client.get(f"/v1/sessions/{session['id']}", headers=api.app).json()
    assert stored["event_count"] == 1


def test_instants_before_2000_are_refused_not_stored(api: Api) -> None:
    for started_at in ("0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z"):
        response = api.client.post(
            "/v1/sessions",
            json={
                "kind": "webinar",
                "resource_id": "w",
                "subject_id": "u",
                "started_at": started_at,
            },
            headers=api.app,
        )
        assert response.status_code == 422, response.text


def test_a_reaped_sessions_own_exit_replaces_the_reapers_end_and_corrects_its_charge(
    api: Api,
) -> None:
    rate = {"credits_per_minute": 60}
    assert api.client.put("/v1/rates/kiosk", json=rate, headers=api.admin).status_code == 200
    assert settings(api, idle_timeout_seconds=10).status_code == 200
    session = api.start(kind="kiosk", resource_id="booth-1", started_at=ago(seconds=90))
    path = f"/v1/sessions/{session['id']}"
    reap(api)
    reaped = api.client.get(path, headers=api.app).json()
    assert (reaped["status"], reaped["ended_at"]) == ("timed_out", session["started_at"])
    assert reaped["charge"]["credits"] == 0

    exit_at = ago(seconds=30)
    exited = api.client.post(f"{path}/exit", json={"at": exit_at}, headers=api.app)
    retried = api.client.post(f"{path}/exit", json={"at": ago(seconds=1)}, headers=api.app)

    assert exited.status_code == 200, exited.text
    body = exited.json()
    assert body["status"] == "completed" and body["ended_at"][:19] == exit_at[:19]
    assert body["charge"]["credits"] == math.ceil(body["duration_seconds"])  # 60 a minute
    assert retried.json()["ended_at"] == body["ended_at"]
    ledger = api.client.get("/v1/accounts/user-1/credits/ledger", headers=api.admin).json()
    mine = [e for e in ledger["items"] if e["session_id"] == session["id"]]
    assert sorted(e["kind"] for e in mine) == ["adjustment"]  # the first charge was 0 credits
    assert sum(e["amount"] for e in mine) == -body["charge"]["credits"]


def test_a_running_rated_session_shows_its_cost_and_warns_before_credits_run_out(
    api: Api,
) -> None:
    rate = {"credits_per_minute": 10}
    assert api.client.put("/v1/rates/counseling", json=rate, headers=api.admin).status_code == 200
    grant = {"amount": 100, "reason": "trial", "idempotency_key": "g-1"}
    granted = api.client.post("/v1/accounts/user-1/credits/grants", json=grant, headers=api.admin)
    assert granted.status_code == 201
    assert settings(api, low_balance_credits=30).status_code == 200
    session = api.start(kind="counseling", resource_id="case-1", started_at=ago(minutes=8))
    path = f"/v1/sessions/{session['id']}"

    low = api.client.get(path, headers=api.app).json()["charge_estimate"]
    heartbeat = api.client.post(f"{path}/heartbeat", json={}, headers=api.app).json()
    unrated = api.client.get(f"/v1/sessions/{api.start()['id']}", headers=api.app).json()

    assert 80 <= low["credits"] <= 81 and low["warning"] == "credits_low"  # 8 minutes
    assert low["balance_after"] == 100 - low["credits"]
    assert heartbeat["charge_estimate"]["warning"] == "credits_low"
    assert unrated["charge_estimate"] is None
    assert api.client.get(path, headers=api.app).json()["status"] == "active"


def test_a_running_session_past_its_credits_is_told_so_and_left_running(api: Api) -> None:
    rate = {"credits_per_minute": 10}
    assert api.client.put("/v1/rates/counseling", json=rate, headers=api.admin).status_code == 200
    session = api.start(kind="counseling", resource_id="case-1", started_at=ago(minutes=2))

    read = api.client.get(f"/v1/sessions/{session['id']}", headers=api.app).json()

    assert read["charge_estimate"]["warning"] == "credits_exhausted"
    assert read["charge_estimate"]["balance_after"] < 0 and read["status"] == "active"


def test_a_heartbeat_from_a_clock_ahead_of_ours_counts_as_now(api: Api) -> None:
    session = api.start()
    ahead = iso(datetime.now(UTC) + timedelta(minutes=3))

    answered = api.client.post(
        f"/v1/sessions/{session['id']}/heartbeat", json={"at": ahead}, headers=api.app
    ).json()

    last_seen = datetime.fromisoformat(answered["last_seen_at"])
    assert last_seen <= datetime.now(UTC) < datetime.fromisoformat(ahead)
