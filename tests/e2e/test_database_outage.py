"""A database that goes away under a running server (restarted, failed over): what clients send
meanwhile is answered 503 `unavailable` with Retry-After, never a 500 and never the driver's
words; the server and its background jobs live through it; sent again once the database is back,
each request is served, and each write counts once."""

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from application.tenants.authenticate import CACHE_TTL
from tests.e2e.outages import JOBS, event, served_once_when_sent_again, start
from tests.e2e.serving import on_storage, operator, serving, tenant_with_keys
from tests.servers import PostgresServer

pytestmark = pytest.mark.slow

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

                served_once_when_sent_again(app, S1, S2, events, the_exit)

            assert server.log.read_text().count(": the storage failed: ") >= len(refused)
