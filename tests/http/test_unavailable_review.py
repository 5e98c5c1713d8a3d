"""Hostile review of 7f4c003 (a passing failure is a 503 to send again): what a client that
does as the 503 says (send the same request again) gets, what the schema promises about the 503,
and how long a client waits for it.

Found, and fixed since:
- /health declared its 503 with a required Retry-After and answered it without one.
- A start, an event batch or an error dated back past the rollups' LATE_DATA was stored, then its
  rollup rewind failed: 503 "send the same request again"; sent again, it was answered as a
  replay (or as duplicates), which rewound nothing: the rolled-up hours never counted it. Replays
  rewind now. A start without a client id is answered 201 whatever its rewind: its resend would
  be a second session.
- MongoDB down: every request waited pymongo's 30 s server selection before its 503
  (`storage_wait_seconds` is 10 s by default now, SESSIONMETER_STORAGE_WAIT_SECONDS).
- An erasure that waited for another erasure of its subject answered 409 `conflict` ("try again
  when it is done"): a passing condition answered as a clash.

Checked and right: an exit whose settlement failed, sent again, is charged once.
"""

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

import adapters.ledger_holds
from application.health.check_health import CheckHealth
from application.storage import StorageError
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import DEFAULT_WAIT_SECONDS
from tests.app_client import Api, without_jobs
from tests.http.envelope import assert_error
from tests.http.test_credits_api import grant

on_memory = pytest.mark.parametrize("storage_url", ["memory"], indirect=True)
on_sqlite = pytest.mark.parametrize("storage_url", ["sqlite"], indirect=True)


# --- /health: the schema's 503 and the answer's --------------------------------------------------


class _Down:
    async def ping(self) -> None:
        raise StorageError("connection refused")


@on_memory
def test_health_answers_its_503_with_the_retry_after_its_schema_requires(api: Api) -> None:
    schema = api.client.get("/schema/openapi.json").json()
    declared = schema["paths"]["/health"]["get"]["responses"]["503"]
    assert declared["headers"]["Retry-After"]["required"] is True

    down = CheckHealth(storage=_Down())
    with api.container.use_cases.check_health.override(providers.Object(down)):
        response = api.client.get("/health")

    assert_error(response, 503, "unavailable")
    assert "Retry-After" in response.headers, dict(response.headers)


# --- A write stored, its rollup rewind failing: sent again, the rewind is lost ---------------------


class _FlakyLeases:
    """The storage's rollup leases, whose next rewind fails (the database dropping the
    connection after the request's write), recording the rewinds that went through."""

    def __init__(self, leases: Any) -> None:
        self._leases = leases
        self.fail_next = False
        self.rewound: list[datetime] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._leases, name)

    async def rewind(self, tenant_id: str, to: datetime) -> None:
        if self.fail_next:
            self.fail_next = False
            raise StorageError("server closed the connection unexpectedly")
        self.rewound.append(to)
        await self._leases.rewind(tenant_id, to)


@pytest.fixture
def leases(api: Api) -> Iterator[_FlakyLeases]:
    flaky = _FlakyLeases(api.container.storage.rollup_leases())
    with api.container.storage.rollup_leases.override(providers.Object(flaky)):
        yield flaky


def _hours_ago(hours: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=hours)


def _start_body(started_at: datetime, **body: Any) -> dict[str, Any]:
    return {
        "kind": "kiosk",
        "resource_id": "kiosk-1",
        "subject_id": "user-1",
        "started_at": started_at.isoformat(),
        **body,
    }


@on_memory
def test_a_dated_back_start_sent_again_after_its_503_rewinds_the_rollups(
    api: Api, leases: _FlakyLeases
) -> None:
    body = _start_body(_hours_ago(3), id=str(uuid.uuid4()))
    leases.fail_next = True
    first = api.client.post("/v1/sessions", json=body, headers=api.app)
    assert_error(first, 503, "unavailable")
    assert first.headers["Retry-After"] == "5"

    again = api.client.post("/v1/sessions", json=body, headers=api.app)

    assert again.status_code == 200, again.text  # a replay: the first attempt had stored it
    assert leases.rewound, "the hours the start counts in were never rolled up again"


@on_memory
def test_a_start_without_an_id_whose_rewind_fails_is_stored_and_answered_once(
    api: Api, leases: _FlakyLeases, caplog: pytest.LogCaptureFixture
) -> None:
    """Its resend could not be told from a new start: it is answered 201, and the operator is
    told to roll the hours up again."""
    started_at = _hours_ago(3)
    leases.fail_next = True
    first = api.client.post("/v1/sessions", json=_start_body(started_at), headers=api.app)

    assert first.status_code == 201, first.text
    assert leases.rewound == []
    listed = api.client.get("/v1/sessions?subject_id=user-1", headers=api.app).json()
    assert [s["id"] for s in listed["items"]] == [first.json()["id"]]
    assert f"rollup --since {started_at.isoformat()}" in caplog.text


def _session_dated_back(api: Api, leases: _FlakyLeases) -> tuple[datetime, str]:
    """A session started 3 hours ago, its rewind already made: its start and id."""
    started = _hours_ago(3)
    session = api.client.post("/v1/sessions", json=_start_body(started), headers=api.app)
    assert session.status_code == 201, session.text
    leases.rewound.clear()
    return started, session.json()["id"]


@on_memory
def test_a_dated_back_event_batch_sent_again_after_its_503_rewinds_the_rollups(
    api: Api, leases: _FlakyLeases
) -> None:
    started, session_id = _session_dated_back(api, leases)
    event = {
        "session_id": session_id,
        "sequence_no": 1,
        "type": "tap",
        "at": (started + timedelta(minutes=1)).isoformat(),
    }
    leases.fail_next = True
    first = api.client.post("/v1/events/batch", json={"events": [event]}, headers=api.app)
    assert_error(first, 503, "unavailable")

    again = api.client.post("/v1/events/batch", json={"events": [event]}, headers=api.app)

    assert again.status_code == 200, again.text
    assert again.json()["duplicates"] == 1, again.text  # the first attempt had stored it
    assert leases.rewound, "the hours the event counts in were never rolled up again"


@on_memory
def test_a_dated_back_error_sent_again_after_its_503_rewinds_the_rollups(
    api: Api, leases: _FlakyLeases
) -> None:
    started, session_id = _session_dated_back(api, leases)
    error = {
        "id": str(uuid.uuid4()),
        "at": (started + timedelta(minutes=1)).isoformat(),
        "device_id": "kiosk-1",
        "session_id": session_id,
        "app_version": "1.4.2",
        "severity": "error",
        "type": "PrinterError",
        "message": "out of paper",
    }
    leases.fail_next = True
    first = api.client.post("/v1/errors", json=error, headers=api.app)
    assert_error(first, 503, "unavailable")

    again = api.client.post("/v1/errors", json=error, headers=api.app)

    assert again.status_code == 200, again.text  # a replay: the first attempt had stored it
    assert leases.rewound, "the hours the error counts in were never rolled up again"


# --- An exit whose settlement failed: sent again, charged once (checked right) -------------------


class _FlakyLedger:
    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger
        self.fail_next = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

    async def settle(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail_next:
            self.fail_next = False
            raise StorageError("server closed the connection unexpectedly")
        return await self._ledger.settle(*args, **kwargs)


@on_sqlite
def test_an_exit_whose_settlement_failed_sent_again_is_charged_once(api: Api) -> None:
    rate = api.client.put("/v1/rates/counseling", json={"credits_per_minute": 2}, headers=api.admin)
    assert rate.status_code == 200, rate.text
    assert grant(api, "user-1", 100, "welcome").status_code == 201
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    body = _start_body(started, kind="counseling", id=str(uuid.uuid4()))
    assert api.client.post("/v1/sessions", json=body, headers=api.app).status_code == 201
    exit_body = {"at": (started + timedelta(minutes=5)).isoformat()}
    path = f"/v1/sessions/{body['id']}/exit"
    flaky = _FlakyLedger(api.container.storage.ledger())
    with api.container.storage.ledger.override(providers.Object(flaky)):
        flaky.fail_next = True
        first = api.client.post(path, json=exit_body, headers=api.app)
        assert_error(first, 503, "unavailable")
        again = api.client.post(path, json=exit_body, headers=api.app)
        twice = api.client.post(path, json=exit_body, headers=api.app)

    assert again.status_code == 200, again.text
    assert again.json()["charge"]["credits"] == 10, again.text
    assert twice.json()["charge"] == again.json()["charge"]
    ledger = api.client.get("/v1/accounts/user-1/credits/ledger", headers=api.admin).json()
    assert sorted(e["amount"] for e in ledger["items"]) == [-10, 100], ledger
    balance = api.client.get("/v1/accounts/user-1/credits", headers=api.admin).json()
    assert balance["balance"] == 90, balance


# --- An erasure that waited for another: a passing condition answered 409 -------------------------


@on_memory
def test_an_erasure_waiting_for_another_is_a_503_to_send_again(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adapters.ledger_holds, "ERASURE_WAIT_SECONDS", 0.3)
    tenant = api.run(api.container.storage.tenants().get_by_name, "acme")
    erasure = api.container.storage.erasure()

    async def another_erasure() -> None:
        await erasure.with_ledgers_held(tenant.id, ["user-1"], lambda: asyncio.sleep(3))

    holding = api.client.blocking_portal.start_task_soon(another_erasure)
    time.sleep(0.2)
    try:
        response = api.client.delete("/v1/subjects/user-1", headers=api.admin)
    finally:
        holding.result(timeout=10)

    assert_error(response, 503, "unavailable")
    assert "Retry-After" in response.headers


# --- MongoDB down: how long a client waits for its 503 ---------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_request_while_mongodb_is_down_is_answered_503_within_seconds() -> None:
    settings = without_jobs(f"mongodb://127.0.0.1:{_closed_port()}/review")
    with TestClient(create_app(build_container(settings), settings)) as client:
        began = time.monotonic()
        response = client.get(
            f"/v1/sessions/{uuid.uuid4()}", headers={"X-API-Key": "sm_live_whatever"}
        )
        took = time.monotonic() - began

    assert_error(response, 503, "unavailable")
    assert took < DEFAULT_WAIT_SECONDS + 5, f"the client waited {took:.1f} s for its 503"
