"""The server closes stale sessions, rolls usage up and reconciles LiveKit stays on its own
schedule, without an operator."""

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.testing import TestClient

from application.livekit.add_livekit_account import AddLiveKitAccountCommand
from application.tenants.create_api_key import CreateApiKeyCommand
from application.tenants.create_tenant import CreateTenantCommand
from entrypoints.container import Container, build_container
from entrypoints.http import background
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.fake_livekit import fake_livekit, unreachable_url
from tests.livekit_server import LiveKitServer


def test_the_server_reaps_a_silent_session_by_itself() -> None:
    settings = Settings(storage_url="memory://", reaper_interval_seconds=0.05)
    container = build_container(settings)
    with TestClient(create_app(container, settings)) as client:
        client.blocking_portal.call(
            container.use_cases.create_tenant(), CreateTenantCommand("acme")
        )
        key = client.blocking_portal.call(
            container.use_cases.create_api_key(), CreateApiKeyCommand("acme", "ingest")
        ).secret
        silent_since = datetime.now(UTC) - timedelta(minutes=10)
        session = client.post(
            "/v1/sessions",
            json={
                "kind": "kiosk",
                "resource_id": "b",
                "subject_id": "k",
                "started_at": silent_since.isoformat(),
            },
            headers={"X-API-Key": key},
        ).json()

        deadline = time.monotonic() + 5
        while (
            status := client.get(
                f"/v1/sessions/{session['id']}", headers={"X-API-Key": key}
            ).json()["status"]
        ) == "active" and time.monotonic() < deadline:
            time.sleep(0.05)

    assert status == "timed_out"


def test_the_server_rolls_usage_up_by_itself() -> None:
    settings = Settings(
        storage_url="memory://", reaper_interval_seconds=0, rollup_interval_seconds=0.05
    )
    container = build_container(settings)
    with TestClient(create_app(container, settings)) as client:
        client.blocking_portal.call(
            container.use_cases.create_tenant(), CreateTenantCommand("acme")
        )
        ingest = client.blocking_portal.call(
            container.use_cases.create_api_key(), CreateApiKeyCommand("acme", "ingest")
        ).secret
        admin = client.blocking_portal.call(
            container.use_cases.create_api_key(), CreateApiKeyCommand("acme", "admin")
        ).secret
        client.post(
            "/v1/sessions",
            json={"kind": "kiosk", "resource_id": "booth-1", "subject_id": "k"},
            headers={"X-API-Key": ingest},
        )

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            hours = client.get("/v1/reports/usage", headers={"X-API-Key": admin}).json()["items"]
            if sum(h["sessions_started"] for h in hours) == 1:
                break
            time.sleep(0.05)

    assert sum(h["sessions_started"] for h in hours) == 1


def _reconciling_server() -> tuple[Settings, Container]:
    settings = Settings(
        storage_url="memory://",
        reaper_interval_seconds=0,
        rollup_interval_seconds=0,
        livekit_reconcile_interval_seconds=0.05,
    )
    return settings, build_container(settings)


def _open_stay(client: TestClient[Any], container: Container, livekit_url: str) -> str:
    """acme with a LiveKit server at `livekit_url` and a stay its webhook opened; an admin key."""
    client.blocking_portal.call(container.use_cases.create_tenant(), CreateTenantCommand("acme"))
    admin = client.blocking_portal.call(
        container.use_cases.create_api_key(), CreateApiKeyCommand("acme", "admin")
    ).secret
    server = LiveKitServer()
    client.blocking_portal.call(
        container.use_cases.add_livekit_account(),
        AddLiveKitAccountCommand("acme", server.key, server.secret, livekit_url),
    )
    raw, headers = server.joined("ana", datetime.now(UTC) - timedelta(minutes=5))
    assert client.post("/v1/webhooks/livekit", content=raw, headers=headers).status_code == 200
    return str(admin)


def test_the_server_reconciles_livekit_stays_by_itself() -> None:
    settings, container = _reconciling_server()
    with fake_livekit() as livekit, TestClient(create_app(container, settings)) as client:
        admin = _open_stay(client, container, livekit.url)  # the server has no such room
        deadline = time.monotonic() + 5
        while (stay := client.get("/v1/sessions", headers={"X-API-Key": admin}).json()["items"][0])[
            "status"
        ] == "active" and time.monotonic() < deadline:
            time.sleep(0.05)

    assert (stay["status"], stay["exit_reason"]) == ("completed", "reconciled")


class Lines(logging.Handler):
    """What a logger said, one message a line (caplog's handler does not survive the logging
    configuration the app applies when it starts)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_livekit_server_that_does_not_answer_is_one_log_line_per_run() -> None:
    down = unreachable_url()
    settings, container = _reconciling_server()
    said, logger = Lines(), logging.getLogger(background.__name__)
    with TestClient(create_app(container, settings)) as client:
        logger.addHandler(said)
        try:
            admin = _open_stay(client, container, down)
            deadline = time.monotonic() + 5
            while len(said.lines) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            stay = client.get("/v1/sessions", headers={"X-API-Key": admin}).json()["items"][0]
        finally:
            logger.removeHandler(said)

    assert len(said.lines) >= 2  # every run says it, and the job goes on
    reason = f"LiveKit reconciliation: tenant acme: LiveKit server {down}: no answer ("
    assert all(line.startswith(reason) and "\n" not in line for line in said.lines)
    assert stay["status"] == "active"
