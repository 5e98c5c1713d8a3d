"""Credits through the API: rates, grants, charging at exit, balance, ledger, settings, alerts."""

from datetime import UTC, datetime, timedelta
from typing import Any

from application.tenants.create_api_key import CreateApiKeyCommand
from tests.app_client import Api
from tests.http.envelope import assert_error, invalid_fields


def iso(at: datetime) -> str:
    return at.isoformat()


def counseling_rate(api: Api, **body: Any) -> Any:
    body = {"credits_per_minute": 2, **body}
    return api.client.put("/v1/rates/counseling", json=body, headers=api.admin)


def grant(api: Api, subject: str, amount: object, key: str, **body: Any) -> Any:
    return api.client.post(
        f"/v1/accounts/{subject}/credits/grants",
        json={"amount": amount, "reason": "welcome", "idempotency_key": key, **body},
        headers=api.admin,
    )


def record(api: Api, subject: str, minutes: float, **exit: Any) -> dict[str, Any]:
    started = datetime.now(UTC) - timedelta(hours=1)
    session = api.start(kind="counseling", subject_id=subject, started_at=iso(started))
    response = api.client.post(
        f"/v1/sessions/{session['id']}/exit",
        json={"at": iso(started + timedelta(minutes=minutes)), **exit},
        headers=api.app,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_session_is_priced_at_its_end_and_recorded_once(api: Api) -> None:
    assert counseling_rate(api).json()["rounding"] == "ceil"
    assert grant(api, "dr-kim", 100, "welcome-kim").status_code == 201

    ended = record(api, "dr-kim", 12.5)
    again = api.client.post(f"/v1/sessions/{ended['id']}/exit", headers=api.app).json()

    assert ended["charge"] == {"credits": 25, "balance_after": 75, "warning": None}
    assert ended["charge_state"] == "charged" and again["charge"] == ended["charge"]
    credits = api.client.get("/v1/accounts/dr-kim/credits", headers=api.admin).json()
    assert credits == {"subject_id": "dr-kim", "balance": 75, "granted": 100, "consumed": 25}
    ledger = api.client.get("/v1/accounts/dr-kim/credits/ledger", headers=api.admin).json()
    assert [(e["kind"], e["amount"], e["session_id"]) for e in ledger["items"]] == [
        ("grant", 100, None),
        ("charge", -25, ended["id"]),
    ]


def test_meters_are_priced_too_and_failed_sessions_cost_nothing(api: Api) -> None:
    counseling_rate(api, meter_rates={"analysis": {"per": 1, "credits": 3}})

    ended = record(api, "dr-lee", 1, usage={"analysis": 2})
    failed = record(api, "dr-lee", 30, status="failed")

    assert ended["charge"]["credits"] == 2 + 6
    assert failed["charge"] is None and failed["charge_state"] == "not_charged"


def test_a_soft_overdraft_lets_the_session_finish_and_tells_an_admin(api: Api) -> None:
    counseling_rate(api)

    ended = record(api, "dr-park", 5)

    assert ended["charge"] == {"credits": 10, "balance_after": -10, "warning": "negative_balance"}
    alerts = api.client.get("/v1/alerts", headers=api.admin).json()["items"]
    assert [(a["kind"], a["subject_id"], a["session_id"]) for a in alerts] == [
        ("negative_balance", "dr-park", ended["id"])
    ]


def test_a_hard_overdraft_stops_a_start_below_the_minimum(api: Api) -> None:
    counseling_rate(api)
    settings = api.client.put(
        "/v1/settings", json={"overdraft": "hard", "min_start_credits": 20}, headers=api.admin
    )
    assert settings.json()["overdraft"] == "hard" and settings.json()["idle_timeout_seconds"] == 300
    grant(api, "dr-cho", 10, "k1")

    refused = api.client.post(
        "/v1/sessions",
        json={"kind": "counseling", "resource_id": "room", "subject_id": "dr-cho"},
        headers=api.app,
    )
    body = assert_error(refused, 402, "insufficient_credits")
    assert (body["balance"], body["required"]) == (10, 20)
    unrated = api.client.post(
        "/v1/sessions",
        json={"kind": "webinar", "resource_id": "w", "subject_id": "dr-cho"},
        headers=api.app,
    )
    assert unrated.status_code == 201
    grant(api, "dr-cho", 10, "k2")
    assert api.start(kind="counseling", subject_id="dr-cho")["status"] == "active"


def test_grants_replay_by_key_and_conflict_on_other_content(api: Api) -> None:
    first = grant(api, "u", 50, "promo-1")
    replay = grant(api, "u", 50, "promo-1")
    other = grant(api, "u", 60, "promo-1")

    assert first.status_code == 201 and replay.status_code == 200
    assert replay.json() == first.json()
    assert_error(other, 409, "conflict")
    assert api.client.get("/v1/accounts/u/credits", headers=api.admin).json()["balance"] == 50


def test_bad_credit_input_names_the_field(api: Api) -> None:
    assert invalid_fields(grant(api, "u", 0, "k")) == ["amount"]
    assert invalid_fields(grant(api, "u", "5", "k")) == ["amount"]
    assert invalid_fields(counseling_rate(api, credits_per_minute=-1)) == ["credits_per_minute"]
    assert invalid_fields(counseling_rate(api, rounding="up")) == ["rounding"]
    assert invalid_fields(
        counseling_rate(api, meter_rates={"analysis": {"per": 0, "credits": 1}})
    ) == ["meter_rates.analysis.per"]
    assert invalid_fields(
        api.client.put("/v1/rates/Bad Kind", json={"credits_per_minute": 1}, headers=api.admin)
    ) == ["kind"]
    assert invalid_fields(
        api.client.put("/v1/settings", json={"overdraft": "maybe"}, headers=api.admin)
    ) == ["overdraft"]
    assert invalid_fields(
        api.client.put("/v1/settings", json={"max_batch_events": 0}, headers=api.admin)
    ) == ["max_batch_events"]


def test_credits_are_configured_by_admins_and_read_by_back_ends(api: Api) -> None:
    for method, path, app_may in [
        ("put", "/v1/rates/counseling", False),
        ("post", "/v1/accounts/u/credits/grants", False),
        ("get", "/v1/accounts/u/credits", True),
        ("get", "/v1/accounts/u/credits/ledger", True),
        ("get", "/v1/settings", False),
        ("put", "/v1/settings", False),
        ("get", "/v1/alerts", False),
    ]:
        kwargs: dict[str, Any] = {"json": {}} if method != "get" else {}
        assert_error(
            getattr(api.client, method)(path, headers=api.ingest, **kwargs), 403, "forbidden"
        )
        by_app = getattr(api.client, method)(path, headers=api.app, **kwargs)
        if app_may:
            assert by_app.status_code == 200, (path, by_app.text)
        else:
            assert_error(by_app, 403, "forbidden")
        assert_error(getattr(api.client, method)(path, **kwargs), 401, "unauthorized")


def test_each_tenant_has_its_own_credits(api: Api) -> None:
    grant(api, "shared-name", 40, "k")
    command = CreateApiKeyCommand("globex", "admin")
    other_admin = api.run(api.container.use_cases.create_api_key(), command).secret
    theirs = api.client.get(
        "/v1/accounts/shared-name/credits", headers={"X-API-Key": other_admin}
    ).json()
    assert theirs["balance"] == 0
