"""The real thing: `sessionmeter serve` as a process on an empty SQLite file, over a socket."""

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port

pytestmark = pytest.mark.slow

SESSIONMETER = str(Path(sys.executable).parent / "sessionmeter")


def operator(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [SESSIONMETER, *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The base URL of a fresh server, and an ingest key of its tenant."""
    env = {"SESSIONMETER_STORAGE_URL": f"sqlite:///{tmp_path}/fresh.db", "PATH": "/usr/bin:/bin"}
    port = free_port()
    process = subprocess.Popen(
        [SESSIONMETER, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not answer /health in 30 s"
            time.sleep(0.1)
        operator(env, "tenants", "create", "acme")
        yield base, operator(env, "keys", "create", "--tenant", "acme", "--role", "ingest")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
        assert "Traceback" not in stderr, stderr


def test_a_session_lives_its_whole_life_through_a_real_server(server: tuple[str, str]) -> None:
    base, key = server
    started_at = datetime.now(UTC) - timedelta(minutes=10)
    with httpx.Client(base_url=base, headers={"X-API-Key": key}) as http:
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
        assert http.post(f"/v1/sessions/{session_id}/heartbeat", json={}).status_code == 200
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
        assert batch.json()["inserted"] == 3
        ended_at = started_at + timedelta(minutes=8)
        exit = http.post(f"/v1/sessions/{session_id}/exit", json={"at": ended_at.isoformat()})
        assert exit.status_code == 200, exit.text
        malformed = http.post(
            "/v1/sessions", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        session = http.get(f"/v1/sessions/{session_id}").json()

    assert session["status"] == "completed"
    assert session["duration_seconds"] == 480.0
    assert session["usage"] == {"photos": 3, "cost_usd": "0.15"}
    assert malformed.status_code == 400 and malformed.json()["error"] == "malformed_json"
