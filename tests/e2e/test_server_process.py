"""The real thing: `sessionmeter serve` as a process on an empty SQLite file, over a socket."""

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port

pytestmark = pytest.mark.slow

SESSIONMETER = str(Path(sys.executable).parent / "sessionmeter")
HEALTHY_WITHIN_SECONDS = 30


@dataclass(frozen=True)
class Server:
    base_url: str
    env: dict[str, str]

    def operator(self, *args: str) -> str:
        """Run a CLI command on the server's storage; its last line of standard output."""
        done = subprocess.run(
            [SESSIONMETER, *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", done.stderr
        return done.stdout.splitlines()[-1]

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"X-API-Key": key}, timeout=30)


@contextmanager
def serving(tmp_path: Path, *options: str) -> Iterator[Server]:
    """`sessionmeter serve` on an empty SQLite file until /health answers, then stopped. Its log
    goes to a file (a pipe nobody reads could fill and stall it) that is printed on the way out:
    pytest shows it when the test failed."""
    database = tmp_path / "fresh.db"
    database.touch()
    env = {"SESSIONMETER_STORAGE_URL": f"sqlite:///{database}", "PATH": "/usr/bin:/bin"}
    server = Server(f"http://127.0.0.1:{(port := free_port())}", env)
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [SESSIONMETER, "serve", "--port", str(port), "--log-level", "warning", *options],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_healthy(process, server.base_url)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        server_log = log_path.read_text()
        print(f"--- sessionmeter serve (exit code {process.returncode}) ---\n{server_log}")
    assert "Traceback" not in server_log, server_log


def _wait_until_healthy(process: subprocess.Popen[bytes], base_url: str) -> None:
    deadline = time.monotonic() + HEALTHY_WITHIN_SECONDS
    while True:
        assert process.poll() is None, "the server exited before it was healthy"
        try:
            if httpx.get(f"{base_url}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"no 200 from /health in {HEALTHY_WITHIN_SECONDS} s"
        time.sleep(0.1)


def test_a_session_lives_its_whole_life_through_a_real_server(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        server.operator("tenants", "create", "acme")
        ingest_key = server.operator("keys", "create", "--tenant", "acme", "--role", "ingest")
        admin_key = server.operator("keys", "create", "--tenant", "acme", "--role", "admin")
        server.operator("credits", "grant", "guest-7", "100", "--tenant", "acme")
        with server.client(admin_key) as admin:
            rate = admin.put("/v1/rates/kiosk", json={"credits_per_minute": 2})
            assert rate.status_code == 200, rate.text

        started_at = datetime.now(UTC) - timedelta(minutes=10)
        with server.client(ingest_key) as http:
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
