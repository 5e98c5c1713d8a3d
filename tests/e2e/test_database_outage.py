"""A database that goes away under a running server (restarted, failed over): what clients send
meanwhile is answered 503 `unavailable` with Retry-After, never a 500 and never the driver's
words; the server and its background jobs live through it; sent again once the database is back,
each request is served, and each write counts once."""

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from application.tenants.authenticate import CACHE_TTL
from tests.e2e.serving import on_storage, operator, serving, tenant_with_keys
from tests.servers import PostgresServer

pytestmark = pytest.mark.slow

# The background jobs on, as in production but often: each runs during the outage.
JOBS = {
    "reaper_interval_seconds": "1",
    "rollup_interval_seconds": "1",
    "retention_interval_seconds": "1",
}
BACK_WITHIN_SECONDS = 60
S1, S2 = (str(uuid.uuid4()) for _ in range(2))


def test_requests_while_the_database_is_down_are_503s_served_once_when_sent_again(
    tmp_path: Path,
) -> None:
    with PostgresServer(of_its_own=True) as postgres:
        operator(on_storage(postgres.url), "db", "upgrade")
        key = tenant_with_keys(postgres.url, "acme", ["app"])["app"]
        with serving(tmp_path, storage_url=postgres.url, **JOBS) as server:
            with server.client(key) as app:
                first = start(app, S1)
                assert first.status_code == 201, first.text
                events = {"events": [event(S1, n) for n in (1, 2, 3)]}
                the_exit = {"at": datetime.now(UTC).isoformat()}

                postgres.halt()
                refused = [
                    start(app, S2),  # the key is still remembered: the write fails
                    app.post("/v1/events/batch", json=events),
                    app.post(f"/v1/sessions/{S1}/exit", json=the_exit),
                ]
                time.sleep(CACHE_TTL.total_seconds() + 0.5)
                refused.append(app.get(f"/v1/sessions/{S1}"))  # the key's own look-up fails
                health = httpx.get(f"{server.base_url}/health")
                time.sleep(2)  # the jobs' runs fail meanwhile; the server lives on
                postgres.resume()

                assert health.status_code == 503, health.text
                for answer in refused:
                    assert answer.status_code == 503, answer.text
                    assert answer.json()["error"] == "unavailable", answer.text
                    assert answer.headers["Retry-After"] == "5"
                    assert "5432" not in answer.text and "postgres" not in answer.text.lower()

                second = sent_again(lambda: start(app, S2))
                batch = sent_again(lambda: app.post("/v1/events/batch", json=events))
                ended = sent_again(lambda: app.post(f"/v1/sessions/{S1}/exit", json=the_exit))
                assert second.status_code == 201, second.text
                assert batch.json()["inserted"] == 3, batch.text
                assert ended.status_code == 200, ended.text

                # Sent once more (the client never saw the answers): each counts once.
                assert start(app, S2).status_code == 200
                assert app.post("/v1/events/batch", json=events).json()["duplicates"] == 3
                assert app.post(f"/v1/sessions/{S1}/exit", json=the_exit).json() == ended.json()
                s1 = app.get(f"/v1/sessions/{S1}").json()
                assert (s1["status"], s1["event_count"]) == ("completed", 3), s1
                listed = app.get("/v1/sessions", params={"limit": 10}).json()["items"]
                assert sorted(s["id"] for s in listed) == sorted([S1, S2])

            assert server.log.read_text().count(": the storage failed: ") >= len(refused)


def start(app: httpx.Client, session_id: str) -> httpx.Response:
    body = {"id": session_id, "kind": "webinar", "resource_id": "hall", "subject_id": "ana"}
    return app.post("/v1/sessions", json=body)


def event(session_id: str, sequence_no: int) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "sequence_no": sequence_no,
        "type": "poll_answer",
        "at": datetime.now(UTC).isoformat(),
    }


def sent_again(send: Callable[[], httpx.Response]) -> httpx.Response:
    """What a client does with a 503: wait Retry-After seconds and send the same again."""
    deadline = time.monotonic() + BACK_WITHIN_SECONDS
    while (answer := send()).status_code == 503:
        assert time.monotonic() < deadline, answer.text
        time.sleep(int(answer.headers["Retry-After"]))
    return answer
