"""A server keeps no more PostgreSQL connections than it is given: under more concurrent
requests than that, each waits its turn for one, and every request is answered."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.serving import Server, serving

pytestmark = pytest.mark.slow

CONNECTIONS = 3
CLIENTS = 16
LOAD_SECONDS = 3.0


def lifecycles(server: Server, key: str, client: int, until: float) -> int:
    """Start+exit pairs and a batch of events each, until `until`; how many."""
    pairs = 0
    with server.client(key) as http:
        while time.monotonic() < until:
            start = {"kind": "webinar", "resource_id": "r1", "subject_id": f"viewer-{client}"}
            started = http.post("/v1/sessions", json=start)
            assert started.status_code == 201, started.text
            session_id = started.json()["id"]
            at = datetime.now(UTC).isoformat()
            events = [
                {"session_id": session_id, "sequence_no": n, "type": "poll", "at": at}
                for n in (1, 2)
            ]
            batch = http.post("/v1/events/batch", json={"events": events})
            assert batch.status_code == 200 and batch.json()["inserted"] == 2, batch.text
            ended = http.post(f"/v1/sessions/{session_id}/exit", json={})
            assert ended.status_code == 200, ended.text
            pairs += 1
    return pairs


async def most_connections(url: str, stop: threading.Event) -> int:
    """The most clients connected to the database at once (autovacuum aside), apart from this
    one, until `stop`."""
    watcher = await asyncpg.connect(url)
    try:
        most = 0
        while not stop.is_set():
            count = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            most = max(most, count)
            await asyncio.sleep(0.02)
        return most
    finally:
        await watcher.close()


@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
def test_a_worker_under_load_keeps_to_the_postgres_connections_it_is_given(
    storage_url: str, tmp_path: Path
) -> None:
    with serving(
        tmp_path, storage_url=storage_url, postgres_connections=str(CONNECTIONS)
    ) as server:
        server.operator("tenants", "create", "acme")
        key = server.operator("keys", "create", "--tenant", "acme", "--role", "admin")
        with server.client(key) as admin:  # the load is the point, not the key's rate limit
            unlimited = admin.put("/v1/settings", json={"rate_limit_per_second": None})
            assert unlimited.status_code == 200, unlimited.text
        stop = threading.Event()
        with ThreadPoolExecutor(CLIENTS + 1) as pool:
            watched = pool.submit(asyncio.run, most_connections(storage_url, stop))
            until = time.monotonic() + LOAD_SECONDS
            clients = [pool.submit(lifecycles, server, key, n, until) for n in range(CLIENTS)]
            try:
                pairs = sum(client.result() for client in clients)
            finally:
                stop.set()
            most = watched.result()

    assert pairs >= CLIENTS  # every client got through, waiting its turn
    assert 2 <= most <= CONNECTIONS, most
