"""Input a database would choke on is refused as invalid, on every backend, never a 500."""

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from application.rollups.roll_up_usage import RollUpUsageCommand
from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields

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


def refused(response: Any) -> list[str]:
    """A 422 naming the fields (a date outside 2000-2999 is invalid, one too old is also late)."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] in ("validation_error", "late") and "Traceback" not in response.text
    return [f["field"] for f in body["fields"]]


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
    for per in ("NaN", "Infinity", "-Infinity", 0, "-0", "1e30", "1e999", "0.0000000001"):
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
    for field, value in (
        ("concurrent_users", 2**31),  # an INTEGER column on PostgreSQL
        ("active_rooms", 2**63),
        ("traffic_bytes_total", 2**63),
    ):
        snapshot = {**SNAPSHOT, "at": AT, field: value}
        sent = api.client.post("/v1/snapshots", json=snapshot, headers=api.admin)
        assert refused(sent) == [field]
        batch = {"snapshots": [snapshot]}
        sent = api.client.post("/v1/snapshots/batch", json=batch, headers=api.admin)
        assert refused(sent) == [f"snapshots[0].{field}"]
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


def test_settings_limits_and_parameters_past_64_bits_are_422_naming_them(api: Api) -> None:
    get, put = api.client.get, api.client.put
    big = 2**63
    for setting in (
        "min_start_credits",
        "low_balance_credits",
        "idle_timeout_seconds",
        "max_session_seconds",
        "late_data_window_seconds",
        "max_batch_events",
        "snapshot_retention_days",
        "daily_rollup_retention_days",
    ):
        assert refused(put("/v1/settings", json={setting: big}, headers=api.admin)) == [setting]
    idle = put("/v1/settings", json={"idle_timeouts": {"kiosk": big}}, headers=api.admin)
    assert refused(idle) == ["idle_timeouts.kiosk"]
    plan = put("/v1/plans/free", json={"limits": {"resources_per_month": big}}, headers=api.admin)
    assert refused(plan) == ["limits.resources_per_month"]
    for path in ("/v1/sessions", "/v1/alerts", "/v1/snapshots", "/v1/accounts/u/credits/ledger"):
        assert refused(get(path, params={"limit": big}, headers=api.admin)) == ["limit"], path
    for name in ("users", "days", "hours_per_day"):
        plan_of = {"users": 1, "hours_per_day": 1, "days": 1, name: big}
        priced = get("/v1/reports/cost-model", params=plan_of, headers=api.admin)
        assert refused(priced) == [name]


def test_json_nested_a_thousand_levels_or_more_is_refused_never_a_500(api: Api) -> None:
    session = api.start()
    exit = f"/v1/sessions/{session['id']}/exit"
    event = json.dumps({"session_id": session["id"], "sequence_no": 1, "type": "t", "at": AT})
    for depth in (1000, 100_000):
        deep = "[" * depth + "]" * depth

        def sent(path: str, body: str) -> Any:
            headers = {**api.app, "Content-Type": "application/json"}
            return api.client.post(path, content=body, headers=headers)

        assert_error(sent(exit, f'{{"summary": {{"a": {deep}}}}}'), 400, "malformed_json")
        batch = f'{{"events": [{event[:-1]}, "data": {{"a": {deep}}}}}]}}'
        assert_error(sent("/v1/events/batch", batch), 400, "malformed_json")
        assert_error(sent("/v1/errors/batch", f'{{"errors": [{deep}]}}'), 400, "malformed_json")
        attributes = f'{{"kind": "k", "resource_id": "r", "attributes": {{"a": {deep}}}}}'
        assert invalid_fields(sent("/v1/sessions", attributes)) == ["attributes[...]"]
    stored = api.client.get(f"/v1/sessions/{session['id']}", headers=api.app).json()
    assert (stored["status"], stored["event_count"]) == ("active", 0)


def test_a_body_that_is_not_utf8_is_malformed_json_wherever_the_bytes_are(api: Api) -> None:
    session = api.start()
    event = f'{{"session_id": "{session["id"]}", "sequence_no": 1, "type": "t", "at": "{AT}"'
    for path, body, headers in (
        ("/v1/sessions", b'{"kind": "\xff", "resource_id": "r"}', api.app),
        (
            "/v1/sessions",
            b'{"kind": "k", "resource_id": "r", "subject_id": "\xed\xa0\x80"}',
            api.app,
        ),
        # In a field the body does not have, which a decoder skips unread.
        ("/v1/sessions", b'{"kind": "k", "resource_id": "r", "x": "\xc3\x28"}', api.app),
        # In an event of a batch, which is decoded on its own, later.
        ("/v1/events/batch", b'{"events": [' + event.encode() + b', "label": "\xff"}]}', api.app),
        ("/v1/keys", b'{"role": "app", "name": "\xe2\x82"}', api.admin),
    ):
        sent = api.client.post(
            path, content=body, headers={**headers, "Content-Type": "text/plain"}
        )
        assert "invalid UTF-8" in assert_error(sent, 400, "malformed_json")["detail"], body
    listed = api.client.get("/v1/sessions", headers=api.admin).json()["items"]
    assert [s["id"] for s in listed] == [session["id"]]
    stored = api.client.get(f"/v1/sessions/{session['id']}", headers=api.app).json()
    assert stored["event_count"] == 0


def test_a_nul_in_a_path_segment_query_parameter_or_cursor_is_422_naming_it(api: Api) -> None:
    get = api.client.get
    session = api.start(subject_id="u")["id"]
    nul = "a%00b"
    by_path = [
        ("GET", f"/v1/sessions/{nul}", "session_id"),
        ("GET", f"/v1/sessions/{nul}/events", "session_id"),
        ("GET", f"/v1/sessions/{nul}/distribution?field=type", "session_id"),
        ("POST", f"/v1/sessions/{nul}/heartbeat", "session_id"),
        ("GET", f"/v1/accounts/{nul}/credits", "subject_id"),
        ("GET", f"/v1/accounts/{nul}/credits/ledger", "subject_id"),
        ("GET", f"/v1/accounts/{nul}/limits", "subject_id"),
        ("GET", f"/v1/accounts/{nul}/usage-stats", "subject_id"),
        ("GET", f"/v1/accounts/u/resources/{nul}/trial-status", "resource_id"),
        ("POST", f"/v1/accounts/{nul}/resources", "subject_id"),
        ("POST", f"/v1/accounts/{nul}/credits/grants", "subject_id"),
        ("PUT", f"/v1/accounts/{nul}/subscription", "subject_id"),
        ("PUT", f"/v1/rates/{nul}", "kind"),
        ("PUT", f"/v1/plans/{nul}", "plan_id"),
        ("PUT", f"/v1/livekit/accounts/{nul}", "api_key"),
        ("PATCH", f"/v1/sales/{nul}/settlement", "sale_id"),
        ("DELETE", f"/v1/keys/{nul}", "key_id"),
    ]
    for method, path, name in by_path:
        assert refused(api.client.request(method, path, headers=api.admin)) == [name], path
    by_query = {
        "/v1/sessions": ("kind", "resource_id", "subject_id", "status", "cursor"),
        f"/v1/sessions/{session}/events": ("type", "label", "cursor"),
        f"/v1/sessions/{session}/distribution": ("field",),
        "/v1/snapshots": ("source",),
        "/v1/errors": ("fingerprint", "device_id", "app_version", "severity", "cursor"),
        "/v1/sales": ("session_id", "device_id", "state", "cursor"),
        "/v1/accounts/u/credits/ledger": ("cursor",),
        "/v1/reports/active": ("resource_id",),
        "/v1/reports/resources": ("kind",),
        "/v1/reports/watch-time": ("resource_id",),
        "/v1/reports/usage": ("bucket", "kind", "resource_id"),
        "/v1/reports/errors": ("app_version", "device_id", "group_by"),
        "/v1/reports/performance": ("type", "group_by"),
        "/v1/reports/sales": ("group_by", "currency"),
    }
    for path, names in by_query.items():
        for name in names:
            sent = get(f"{path}?{name}={nul}&resource_id=r&field=type", headers=api.admin)
            assert refused(sent) == [name], (path, name)
    # A cursor that decodes to text holding a NUL (this service never returns one).
    for path, position in (
        ("/v1/sessions", [AT, "a\u0000b"]),
        ("/v1/errors", [AT, "a\u0000b"]),
        ("/v1/sales", [AT, "a\u0000b"]),
        ("/v1/accounts/u/credits/ledger", ["a\u0000b"]),
    ):
        cursor = base64.urlsafe_b64encode(json.dumps(position).encode()).decode()
        assert refused(get(path, params={"cursor": cursor}, headers=api.admin)) == ["cursor"]


def test_meters_stay_exact_to_the_last_digit_on_every_store(api: Api) -> None:
    """Nano-units past 2^63 (on SQLite, + turned them into floats and sum() failed): a session's
    total stays below 10^9, what would pass it is refused naming the meter, and the sum of many
    sessions' is exact."""
    hour = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    meters = {"cost": "999999999.123456789", "photos": 999_999_999}
    first = api.start(subject_id="u", started_at=hour.isoformat())
    event = {"session_id": first["id"], "type": "t", "at": hour.isoformat(), "meters": meters}
    batches = [
        api.client.post(
            "/v1/events/batch", json={"events": [{**event, "sequence_no": n}]}, headers=api.app
        ).json()
        for n in range(1, 11)
    ]
    exit = f"/v1/sessions/{first['id']}/exit"
    ended = {"at": (hour + timedelta(minutes=30)).isoformat()}
    over = api.client.post(exit, json={**ended, "usage": {"photos": 1}}, headers=api.app)
    closed = api.client.post(exit, json=ended, headers=api.app)
    for n in range(1, 12):
        session = api.start(subject_id="u", started_at=(hour + timedelta(minutes=n)).isoformat())
        path = f"/v1/sessions/{session['id']}/exit"
        api.client.post(path, json={**ended, "usage": meters}, headers=api.app)
    twelve = {"cost": "11999999989.481481468", "photos": 11_999_999_988}

    stats = api.client.get("/v1/accounts/u/usage-stats", headers=api.admin)
    command = RollUpUsageCommand("acme", since=hour)
    api.run(lambda: api.container.jobs.roll_up_usage()(command))
    window = {"from": hour.isoformat(), "to": (hour + timedelta(hours=1)).isoformat()}
    report = api.client.get("/v1/reports/usage", params=window, headers=api.admin)

    assert [b["inserted"] for b in batches] == [1] + [0] * 9
    assert batches[1]["errors"][0]["error"].startswith("validation_error: meters.cost: ")
    assert refused(over) == ["usage.photos"]
    assert closed.json()["usage"] == meters, closed.text
    assert stats.json()["meters"] == twelve, stats.text
    assert [bucket["meters"] for bucket in report.json()["items"]] == [twelve], report.text
