"""The real thing: `sessionmeter serve` as a process on an empty SQLite file, over a socket."""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import serving

pytestmark = pytest.mark.slow


def test_a_session_lives_its_whole_life_through_a_real_server(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        server.operator("tenants", "create", "acme")
        # The kiosk kind is rated: its sessions come from the product's back end.
        app_key = server.operator("keys", "create", "--tenant", "acme", "--role", "app")
        admin_key = server.operator("keys", "create", "--tenant", "acme", "--role", "admin")
        server.operator("credits", "grant", "guest-7", "100", "--tenant", "acme")
        with server.client(admin_key) as admin:
            rate = admin.put("/v1/rates/kiosk", json={"credits_per_minute": 2})
            assert rate.status_code == 200, rate.text

        started_at = datetime.now(UTC) - timedelta(minutes=10)
        with server.client(app_key) as http:
            start = http.post(
                "/v1/sessions",
                json={
                    "kind": "kiosk",
                    "resource_id": "booth-1",
                    "subject_id": "guest-7",
                    "started_at": started_at.isoformat(),
                },
            )
            assert start.status_code == 201, start.text
            session_id = start.json()["id"]
            heartbeat = http.post(f"/v1/sessions/{session_id}/heartbeat", json={})
            assert heartbeat.status_code == 200, heartbeat.text
            batch = http.post(
                "/v1/events/batch",
                json={
                    "events": [
                        {
                            "session_id": session_id,
                            "sequence_no": n,
                            "type": "photo",
                            "at": datetime.now(UTC).isoformat(),
                            "meters": {"photos": 1, "cost_usd": "0.05"},
                        }
                        for n in (1, 2, 3)
                    ]
                },
            )
            assert batch.status_code == 200 and batch.json()["inserted"] == 3, batch.text
            ended_at = started_at + timedelta(minutes=8)
            exit = http.post(f"/v1/sessions/{session_id}/exit", json={"at": ended_at.isoformat()})
            assert exit.status_code == 200, exit.text
            session = http.get(f"/v1/sessions/{session_id}").json()
            malformed = http.post(
                "/v1/sessions", content=b"{not json", headers={"Content-Type": "application/json"}
            )
        stranger = httpx.get(f"{server.base_url}/v1/sessions/{session_id}")
        balance = server.operator("credits", "balance", "guest-7", "--tenant", "acme")

    assert session["status"] == "completed"
    assert session["duration_seconds"] == 480.0
    assert session["usage"] == {"photos": 3, "cost_usd": "0.15"}
    assert session["charge"]["credits"] == 16 and session["charge"]["balance_after"] == 84
    assert balance == "guest-7: balance 84 (granted 100, consumed 16)"
    assert malformed.status_code == 400 and malformed.json()["error"] == "malformed_json"
    assert stranger.status_code == 401 and stranger.json()["error"] == "unauthorized"


def test_every_worker_gets_the_settings_and_reaps_silent_sessions(tmp_path: Path) -> None:
    with serving(tmp_path, "--workers", "2", "--reaper-interval", "0.2") as server:
        server.operator("tenants", "create", "acme")
        key = server.operator("keys", "create", "--tenant", "acme", "--role", "ingest")
        silent_since = datetime.now(UTC) - timedelta(hours=1)
        with server.client(key) as http:
            started = http.post(
                "/v1/sessions",
                json={
                    "kind": "kiosk",
                    "resource_id": "booth-2",
                    "client_key": "device-4",
                    "started_at": silent_since.isoformat(),
                },
            )
            assert started.status_code == 201, started.text
            deadline = time.monotonic() + 10
            while (session := http.get(f"/v1/sessions/{started.json()['id']}").json())[
                "status"
            ] == "active" and time.monotonic() < deadline:
                time.sleep(0.1)

    assert session["status"] == "timed_out"
    assert session["ended_at"] == session["last_seen_at"] == session["started_at"]


@pytest.mark.parametrize(
    ("proxies", "recorded"),
    [((), "127.0.0.1"), (("--forwarded-allow-ips", "127.0.0.1"), "203.0.113.9")],
)
def test_a_visitors_address_comes_from_a_trusted_proxy_only(
    tmp_path: Path, proxies: tuple[str, ...], recorded: str
) -> None:
    with serving(tmp_path, *proxies) as server:
        server.operator("tenants", "create", "acme")
        key = server.operator("keys", "create", "--tenant", "acme", "--role", "ingest")
        with server.client(key) as http:
            started = http.post(
                "/v1/sessions",
                json={"kind": "webinar", "resource_id": "launch", "client_key": "tab-1"},
                headers={"X-Forwarded-For": "203.0.113.9"},
            )
    assert started.status_code == 201, started.text
    assert started.json()["attributes"]["ip"] == recorded
