"""Steps of features/credits.feature."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.app_client import Api

scenarios("credits.feature")


@pytest.fixture
def recordings() -> list[dict[str, Any]]:
    """What each recording's last exit answered, in order."""
    return []


@given(
    parsers.parse(
        "the counseling app charges {credits:d} credits a minute for a recording, rounded up"
    )
)
def counseling_rate(api: Api, credits: int) -> None:
    response = api.client.put(
        "/v1/rates/counseling", json={"credits_per_minute": credits}, headers=api.admin
    )
    assert response.status_code == 200, response.text


@given(
    parsers.parse(
        "the counseling app stops recordings that start with fewer than {credits:d} credits"
    )
)
def hard_policy(api: Api, credits: int) -> None:
    response = api.client.put(
        "/v1/settings", json={"overdraft": "hard", "min_start_credits": credits}, headers=api.admin
    )
    assert response.status_code == 200, response.text


def record(api: Api, name: str, seconds: float, status: str = "completed") -> dict[str, Any]:
    started = datetime.now(UTC) - timedelta(hours=2)
    session = api.start(
        kind="counseling", resource_id="recording", subject_id=name, started_at=started.isoformat()
    )
    response = api.client.post(
        f"/v1/sessions/{session['id']}/exit",
        json={"at": (started + timedelta(seconds=seconds)).isoformat(), "status": status},
        headers=api.app,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


@when(parsers.parse('"{name}" records for {minutes:d} minutes and {seconds:d} seconds'))
def records_minutes_seconds(
    api: Api, recordings: list[Any], name: str, minutes: int, seconds: int
) -> None:
    recordings.append(record(api, name, minutes * 60 + seconds))


@when(parsers.parse('"{name}" records for {minutes:d} minutes'))
def records_minutes(api: Api, recordings: list[Any], name: str, minutes: int) -> None:
    recordings.append(record(api, name, minutes * 60))


@when(parsers.parse("the app sends the end of that recording {times:d} more times"))
def retries(api: Api, recordings: list[Any], times: int) -> None:
    for _ in range(times):
        response = api.client.post(f"/v1/sessions/{recordings[-1]['id']}/exit", headers=api.app)
        assert response.json()["charge"] == recordings[-1]["charge"]


@when(parsers.parse('a recording of "{name}" ends {status} after {minutes:d} minutes'))
def does_not_complete(api: Api, name: str, status: str, minutes: int) -> None:
    assert record(api, name, minutes * 60, status)["charge"] is None


@when(parsers.parse('"{name}" tries to start a recording'), target_fixture="attempt")
def tries_to_start(api: Api, name: str) -> Any:
    return api.client.post(
        "/v1/sessions",
        json={"kind": "counseling", "resource_id": "recording", "subject_id": name},
        headers=api.app,
    )


@then(parsers.parse('"{name}" is charged {credits:d} credits'))
def charged(recordings: list[Any], name: str, credits: int) -> None:
    assert recordings[-1]["subject_id"] == name
    assert recordings[-1]["charge"]["credits"] == credits


@then(parsers.parse('the ledger of "{name}" holds one charge, for that recording'))
def one_charge(api: Api, recordings: list[Any], name: str) -> None:
    ledger = api.client.get(f"/v1/accounts/{name}/credits/ledger", headers=api.admin).json()
    charges = [e for e in ledger["items"] if e["kind"] == "charge"]
    assert [(e["session_id"], e["amount"]) for e in charges] == [
        (recordings[-1]["id"], -recordings[-1]["charge"]["credits"])
    ]


@then("the charge says the balance went below zero")
def warned(recordings: list[Any]) -> None:
    assert recordings[-1]["charge"]["warning"] == "negative_balance"
    assert recordings[-1]["charge"]["balance_after"] < 0


@then(parsers.parse('an admin sees an alert about "{name}"'))
def alerted(api: Api, name: str) -> None:
    alerts = api.client.get("/v1/alerts", headers=api.admin).json()["items"]
    assert [a["subject_id"] for a in alerts] == [name]


@then(
    parsers.parse(
        "the recording is refused for too few credits: {balance:d} of the {required:d} needed"
    )
)
def refused(attempt: Any, balance: int, required: int) -> None:
    assert attempt.status_code == 402
    body = attempt.json()
    assert (body["error"], body["balance"], body["required"]) == (
        "insufficient_credits",
        balance,
        required,
    )
