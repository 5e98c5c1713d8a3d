"""The server closes stale sessions and rolls usage up on its own schedule, without an operator."""

import time
from datetime import UTC, datetime, timedelta

from litestar.testing import TestClient

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings


def test_the_server_reaps_a_silent_session_by_itself() -> None:
    settings = Settings(storage_url="memory://", reaper_interval_seconds=0.05)
    container = build_container(settings)
    with TestClient(create_app(container, settings)) as client:
        client.blocking_portal.call(container.create_tenant(), "acme")
        _, key = client.blocking_portal.call(container.create_api_key(), "acme", "ingest")
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
        client.blocking_portal.call(container.create_tenant(), "acme")
        _, ingest = client.blocking_portal.call(container.create_api_key(), "acme", "ingest")
        _, admin = client.blocking_portal.call(container.create_api_key(), "acme", "admin")
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
