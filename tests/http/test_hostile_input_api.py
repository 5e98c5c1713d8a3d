"""Input a database would choke on is refused as invalid, on every backend, never a 500."""

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.app_client import Api
from tests.http.envelope import invalid_fields

# A minute before the tests began: never in the future, never late.
AT = f"{datetime.now(UTC) - timedelta(minutes=1):%Y-%m-%dT%H:%M:%SZ}"
START = {"kind": "webinar", "resource_id": "w", "subject_id": "u"}
SNAPSHOT = {
    "source": "lk-1",
    "cpu_percent": 1,
    "memory_percent": 1,
    "memory_mb": 1,
    "traffic_bytes_total": 1,
    "concurrent_users": 1,
    "active_rooms": 1,
}


def test_nul_characters_in_text_are_invalid_input(api: Api) -> None:
    for field in ("resource_id", "subject_id", "kind"):
        body = {"kind": "webinar", "resource_id": "w", "subject_id": "u", field: "a\u0000b"}
        response = api.client.post("/v1/sessions", json=body, headers=api.app)
        assert invalid_fields(response) == [field]
    session = api.start()
    exit = api.client.post(
        f"/v1/sessions/{session['id']}/exit", json={"reason": "gone\u0000"}, headers=api.app
    )
    assert invalid_fields(exit) == ["reason"]


def test_events_with_numbers_or_text_no_database_holds_are_rejected_alone(api: Api) -> None:
    session = api.start()
    events = [
        {"session_id": session["id"], "sequence_no": 2**63, "type": "tap", "at": AT},
        {"session_id": session["id"], "sequence_no": 1, "type": "t\u0000p", "at": AT},
        {"session_id": session["id"], "sequence_no": 2, "type": "tap", "at": AT, "label": "\u0000"},
        {"session_id": session["id"], "sequence_no": 3, "type": "tap", "at": AT},
    ]

    response = api.client.post("/v1/events/batch", json={"events": events}, headers=api.app)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["inserted"], body["failed"]) == (1, 3)
    assert [e["index"] for e in body["errors"]] == [0, 1, 2]


FIRST_DAY = "0001-01-01T00:00:00Z"
LAST_DAY = "9999-12-31T23:59:59Z"


def refused(response: Any) -> list[str]:
    """A 422 naming the fields (a date outside 2000-2999 is invalid, one too old is also late)."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] in ("validation_error", "late") and "Traceback" not in response.text
    return [f["field"] for f in body["fields"]]


def test_instants_no_store_or_date_arithmetic_holds_are_422_wherever_they_are_sent(
    api: Api,
) -> None:
    post, get, put = api.client.post, api.client.get, api.client.put
    session = api.start()
    cursor = base64.urlsafe_b64encode(json.dumps([FIRST_DAY, session["id"]]).encode()).decode()
    put("/v1/plans/pass", json={}, headers=api.admin)
    for at in (FIRST_DAY, LAST_DAY):
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
        event = {"session_id": session["id"], "sequence_no": 1, "type": "tap", "at": at}
        batch = post("/v1/events/batch", json={"events": [event]}, headers=api.app).json()
        assert batch["failed"] == 1 and ": at: " in batch["errors"][0]["error"]
        for path in (
            "/v1/sessions",
            "/v1/snapshots",
            "/v1/reports/resources",
            "/v1/reports/watch-time",
            "/v1/accounts/u/usage-stats",
            "/v1/reports/usage",
            "/v1/reports/cost-model",
        ):
            for bound in ("from", "to"):
                params = {bound: at, "resource_id": "webinar-1"}
                window = get(path, params=params, headers=api.admin)
                assert refused(window) == [bound], path
    listed = get("/v1/sessions", params={"cursor": cursor.rstrip("=")}, headers=api.admin)
    assert refused(listed) == ["cursor"]


def test_integers_beyond_what_keeps_prices_and_balances_in_64_bits_are_422_naming_them(
    api: Api,
) -> None:
    def rate(**body: Any) -> Any:
        body = {"credits_per_minute": 1, **body}
        return api.client.put("/v1/rates/kiosk", json=body, headers=api.admin)

    def meter(per: Any, credits: int) -> Any:
        return rate(meter_rates={"photos": {"per": per, "credits": credits}})

    def grant(amount: int) -> Any:
        body = {"amount": amount, "reason": "r", "idempotency_key": str(amount)}
        return api.client.post("/v1/accounts/u/credits/grants", json=body, headers=api.admin)

    assert refused(rate(credits_per_minute=2**62)) == ["credits_per_minute"]
    assert refused(rate(credits_per_minute=-1)) == ["credits_per_minute"]
    assert refused(meter(1, 2**40)) == ["meter_rates.photos.credits"]
    assert refused(meter("0.0001", 10)) == ["meter_rates.photos.credits"]  # 100,000 a photo
    for per in ("NaN", "Infinity", 0, "1e30", "0.0000000001"):
        assert refused(meter(per, 1)) == ["meter_rates.photos.per"], per
    many = {f"m{n}": {"per": 1, "credits": 1} for n in range(33)}
    assert refused(rate(meter_rates=many)) == ["meter_rates"]
    for amount in (0, 10**12 + 1, 2**63, 2**64):
        assert refused(grant(amount)) == ["amount"], amount
    plan = {"limits": {"sessions_per_resource": 2**63, "session_kinds": ["kiosk"]}}
    defined = api.client.put("/v1/plans/free", json=plan, headers=api.admin)
    assert refused(defined) == ["limits.sessions_per_resource"]
    attributes = {**START, "attributes": {"score": 2**63}}
    started = api.client.post("/v1/sessions", json=attributes, headers=api.app)
    assert refused(started) == ["attributes[...]"]
    for field, value in (("concurrent_users", 2**31), ("traffic_bytes_total", 2**63)):
        snapshot = {**SNAPSHOT, "at": AT, field: value}
        sent = api.client.post("/v1/snapshots", json=snapshot, headers=api.admin)
        assert refused(sent) == [field]
    # The largest of each is taken, and a long session at the largest rate is priced exactly.
    largest = rate(
        credits_per_minute=10**6, meter_rates={"photos": {"per": "0.001", "credits": 10}}
    )
    assert largest.status_code == 200, largest.text
    assert grant(10**12).status_code == 201
    started_at = datetime.now(UTC) - timedelta(days=2)
    session = api.start(kind="kiosk", subject_id="u", started_at=started_at.isoformat())
    ended = started_at + timedelta(days=1)
    exit = {"at": ended.isoformat(), "usage": {"photos": 999_999_999}}
    closed = api.client.post(f"/v1/sessions/{session['id']}/exit", json=exit, headers=api.app)
    price = 24 * 60 * 10**6 + 999_999_999 * 10_000
    assert closed.json()["charge"]["credits"] == price, closed.text
    assert closed.json()["charge"]["balance_after"] == 10**12 - price


def test_the_bounds_are_in_the_openapi_schema(api: Api) -> None:
    schemas = api.client.get("/schema/openapi.json").json()["components"]["schemas"]

    assert schemas["RateBody"]["properties"]["credits_per_minute"]["maximum"] == 10**6
    assert schemas["GrantBody"]["properties"]["amount"]["maximum"] == 10**12
    assert "10000 per unit" in schemas["MeterRateBody"]["properties"]["credits"]["description"]


def test_json_documents_no_store_keeps_as_sent_are_422_naming_where(api: Api) -> None:
    session = api.start()
    path = f"/v1/sessions/{session['id']}"
    event = {"session_id": session["id"], "sequence_no": 1, "type": "tap", "at": AT}

    batch = api.client.post(
        "/v1/events/batch",
        json={"events": [{**event, "data": {"scores": [1, 2**64]}}, {**event, "sequence_no": 2}]},
        headers=api.app,
    ).json()
    exit = api.client.post(
        f"{path}/exit", json={"summary": {"payment": {"amount": -(2**70)}}}, headers=api.app
    )

    assert batch["inserted"] == 1
    assert batch["errors"][0]["error"].startswith("validation_error: data.scores[1]")
    assert invalid_fields(exit) == ["summary.payment.amount"]
    assert api.client.get(path, headers=api.app).json()["status"] == "active"
