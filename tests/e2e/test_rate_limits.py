"""A real server limiting a key's rate while clients send as fast as they can: every refused
request is a 429 with Retry-After, the clients retry, and every event is stored exactly once."""

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import serving

pytestmark = pytest.mark.slow

PER_SECOND = 20
CLIENTS = 4
BATCHES = 10  # per client, of EVENTS
EVENTS = 10


async def send_everything(base_url: str, key: str, session_id: str, client: int) -> int:
    """Send this client's batches, retrying each 429 after the time it was told; the 429s."""
    refused = 0
    async with httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": key}) as http:
        for batch in range(BATCHES):
            events = [
                {
                    "session_id": session_id,
                    "sequence_no": 1 + client * 1000 + batch * EVENTS + n,
                    "type": "tick",
                    "at": datetime.now(UTC).isoformat(),
                }
                for n in range(EVENTS)
            ]
            while (
                sent := await http.post("/v1/events/batch", json={"events": events})
            ).status_code == 429:
                refused += 1
                await asyncio.sleep(float(sent.headers["Retry-After"]))
            assert sent.status_code == 200, sent.text
            assert sent.json()["inserted"] == EVENTS, sent.text
    return refused


def test_clients_over_the_limit_retry_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        server.operator("tenants", "create", "acme")
        admin = server.operator("keys", "create", "--tenant", "acme", "--role", "admin")
        key = server.operator("keys", "create", "--tenant", "acme", "--role", "ingest")
        with server.client(admin) as operator:
            limit = {"rate_limit_per_second": PER_SECOND}
            assert operator.put("/v1/settings", json=limit).status_code == 200
            body = {"kind": "page", "resource_id": "home", "client_key": str(uuid.uuid4())}
            session = operator.post("/v1/sessions", json=body).json()

            async def everyone() -> list[int]:
                return await asyncio.gather(
                    *(
                        send_everything(server.base_url, key, session["id"], c)
                        for c in range(CLIENTS)
                    )
                )

            refused = asyncio.run(everyone())
            stored = operator.get(f"/v1/sessions/{session['id']}/events", params={"limit": 500})

    assert sum(refused) > 0, "the clients never met the limit: the test proves nothing"
    numbers = [e["sequence_no"] for e in stored.json()["items"]]
    assert sorted(numbers) == sorted(
        1 + c * 1000 + b * EVENTS + n
        for c in range(CLIENTS)
        for b in range(BATCHES)
        for n in range(EVENTS)
    )
