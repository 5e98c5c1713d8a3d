"""Shared steps and fixtures: a tenant's real app on every backend, who is who in the story
(name -> session), and the app's clock, which the story moves instead of waiting."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from dependency_injector import providers
from pytest_bdd import given, parsers, then, when

from application.livekit.add_livekit_account import AddLiveKitAccountCommand
from application.retention.apply_retention import ApplyRetentionCommand
from tests.app_client import Api
from tests.conftest import api_storage_url  # noqa: F401 (this suite's storage_url fixture)
from tests.fakes import FakeClock
from tests.livekit_server import LiveKitServer


@pytest.fixture
def visits() -> dict[str, dict[str, Any]]:
    """The last known state of each named person's session, as the API returned it."""
    return {}


@pytest.fixture
def clock(api: Api) -> Iterator[FakeClock]:
    """The app's clock from the first step that needs it on: "25 minutes pass" is one call.
    It starts at the real time, so that nothing the story records looks like the far past."""
    fake = FakeClock(datetime.now(UTC).replace(microsecond=0))
    api.container.outside.clock.override(providers.Object(fake))
    yield fake
    api.container.outside.clock.reset_override()


@given("a webinar platform that sends its viewers' visits to sessionmeter")
def webinar_platform(api: Api) -> Api:
    return api


@given("a bootcamp whose LiveKit server sends its webhooks to sessionmeter")
def bootcamp(api: Api) -> None:
    server = LiveKitServer()
    command = AddLiveKitAccountCommand("acme", server.key, server.secret)
    api.run(lambda: api.container.use_cases.add_livekit_account()(command))


TIME_PASSES = parsers.re(r"(?P<amount>\d+) (?P<unit>seconds|minutes) pass")


@given(TIME_PASSES)
@when(TIME_PASSES)
def time_passes(clock: FakeClock, amount: str, unit: str) -> None:
    clock.advance(int(amount) * (60 if unit == "minutes" else 1))


@given(parsers.re(r"the (?:platform|app) keeps sessions (?P<days>\d+) days"))
def session_retention(api: Api, days: str) -> None:
    body = {"session_retention_days": int(days)}
    assert api.client.put("/v1/settings", json=body, headers=api.admin).status_code == 200


@when(parsers.parse("{days:d} days pass and retention runs"))
def retention_runs(api: Api, clock: FakeClock, days: int) -> None:
    clock.advance(days * 86_400)
    apply_retention = api.container.jobs.apply_retention()
    deleted = api.run(lambda: apply_retention(ApplyRetentionCommand()))
    assert deleted.failures == []


# Who pays: a counselor, a store. Their credits are granted and read by an admin.
ACCOUNT = r'(?:counselor |store )?"(?P<name>[^"]+)"'


@given(parsers.re(ACCOUNT + r" has (?P<credits>\d+) credits$"))
def has_credits(api: Api, name: str, credits: str) -> None:
    response = api.client.post(
        f"/v1/accounts/{name}/credits/grants",
        json={"amount": int(credits), "reason": "plan", "idempotency_key": str(uuid.uuid4())},
        headers=api.admin,
    )
    assert response.status_code == 201, response.text


@then(parsers.re(ACCOUNT + r" has (?P<credits>-?\d+) credits left$"))
def credits_left(api: Api, name: str, credits: str) -> None:
    response = api.client.get(f"/v1/accounts/{name}/credits", headers=api.admin)
    assert response.status_code == 200, response.text
    assert response.json()["balance"] == int(credits)


@pytest.fixture(autouse=True)
def on_every_backend(api: Api) -> Api:
    """Asked for up front so that every scenario runs on every store: memory, SQLite,
    PostgreSQL and MongoDB (pytest parametrises only fixtures it sees before the steps run)."""
    return api
