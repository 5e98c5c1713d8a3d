"""Instants at the edges of the calendar, wherever a client sends one: a 422 naming the field,
never an OverflowError (a UTC offset carries year 1 or year 9999 past what a datetime holds)."""

import base64
import json

from tests.app_client import Api
from tests.http.test_hostile_input_api import AT, SNAPSHOT, START, refused

FIRST_DAY = "0001-01-01T00:00:00Z"
LAST_DAY = "9999-12-31T23:59:59Z"
FAULT = {
    "id": "e-1",
    "at": AT,
    "device_id": "d",
    "app_version": "1.0",
    "severity": "error",
    "type": "crash",
    "message": "m",
}
METRIC = {
    "id": "m-1",
    "device_id": "d",
    "app_version": "1.0",
    "type": "checkout",
    "started_at": AT,
    "duration_ms": 1,
    "success": True,
}
SALE = {
    "id": "s-1",
    "device_id": "d",
    "occurred_at": AT,
    "currency": "EUR",
    "amounts": {"gross": 1, "net": 1},
    "payment_method": "card",
}
# Instants whose offset carries them past the calendar's ends once in UTC (an OverflowError).
EDGES = (FIRST_DAY, "0001-01-01T00:00:00+14:00", LAST_DAY, "9999-12-31T23:00:00-12:00")
# Every listing and report that takes a window.
WINDOWED = (
    "/v1/sessions",
    "/v1/snapshots",
    "/v1/errors",
    "/v1/sales",
    "/v1/reports/resources",
    "/v1/reports/watch-time",
    "/v1/accounts/u/usage-stats",
    "/v1/reports/usage",
    "/v1/reports/cost-model",
    "/v1/reports/errors",
    "/v1/reports/performance",
    "/v1/reports/sales",
    "/v1/reports/trials",
    "/v1/reports/funnel/booth",
)


def test_instants_no_store_or_date_arithmetic_holds_are_422_wherever_they_are_sent(
    api: Api,
) -> None:
    post, get, put = api.client.post, api.client.get, api.client.put
    session = api.start()
    cursor = base64.urlsafe_b64encode(json.dumps([FIRST_DAY, session["id"]]).encode()).decode()
    put("/v1/plans/pass", json={}, headers=api.admin)
    for at in EDGES:
        start = post("/v1/sessions", json={"started_at": at, **START}, headers=api.app)
        assert refused(start) == ["started_at"]
        for action in ("heartbeat", "exit"):
            sent = post(f"/v1/sessions/{session['id']}/{action}", json={"at": at}, headers=api.app)
            assert refused(sent) == ["at"]
        snapshot = post("/v1/snapshots", json={**SNAPSHOT, "at": at}, headers=api.admin)
        assert refused(snapshot) == ["at"]
        subscription = {"plan_id": "pass", "ends_at": at}
        subscribed = put("/v1/accounts/u/subscription", json=subscription, headers=api.admin)
        assert refused(subscribed) == ["ends_at"]
        grant = {"amount": 1, "reason": "r", "idempotency_key": at, "expires_at": at}
        granted = post("/v1/accounts/u/credits/grants", json=grant, headers=api.admin)
        assert refused(granted) == ["expires_at"]
        key = post("/v1/keys", json={"role": "app", "expires_at": at}, headers=api.admin)
        assert refused(key) == ["expires_at"]
        for path, body, field in (
            ("/v1/errors", {**FAULT, "at": at}, "at"),
            (
                "/v1/errors",
                {**FAULT, "breadcrumbs": [{"at": at, "type": "tap"}]},
                "breadcrumbs[0].at",
            ),
            ("/v1/performance", {**METRIC, "started_at": at}, "started_at"),
            ("/v1/performance", {**METRIC, "duration_ms": None, "ended_at": at}, "ended_at"),
            ("/v1/sales", {**SALE, "session_id": session["id"], "occurred_at": at}, "occurred_at"),
        ):
            assert refused(post(path, json=body, headers=api.ingest)) == [field], path
        event = {"session_id": session["id"], "sequence_no": 1, "type": "tap", "at": at}
        batch = post("/v1/events/batch", json={"events": [event]}, headers=api.app).json()
        assert batch["failed"] == 1 and ": at: " in batch["errors"][0]["error"]
        for path in WINDOWED:
            for bound in ("from", "to"):
                params = {bound: at, "resource_id": "webinar-1"}
                window = get(path, params=params, headers=api.admin)
                assert refused(window) == [bound], path
    for path in WINDOWED:  # a date alone is no instant
        window = get(path, params={"to": "0001-01-01", "resource_id": "w"}, headers=api.admin)
        assert refused(window) == ["to"], path
    listed = get("/v1/sessions", params={"cursor": cursor.rstrip("=")}, headers=api.admin)
    assert refused(listed) == ["cursor"]
