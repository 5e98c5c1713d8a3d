"""The lifecycle's grouped statements (adapters/sqlalchemy/statement_groups.py) and the batches
written unlocked (adapters/sqlalchemy/event_batches.append_unless_changed), from the sessions as
the server remembers them (adapters/sqlalchemy/remembered_sessions.py), and SQLite's writers
committing together (adapters/sqlalchemy/sqlite_statements.py), as they run: a real server on
PostgreSQL or SQLite, its background jobs on, many clients at once starting, beating, sending
events and ending sessions of now, each start, each batch and each exit sent twice at once (a
retry racing its original, a beacon racing a fetch), and all leaving together as a webinar ends.
Every session is stored once, beats until its end, counts each event once, ends once; every
second send is answered as the first; and the database was sent fewer writes than the clients
made (the grouping is on; on PostgreSQL, whose rows name the transaction that wrote them)."""

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import Databases, run_async
from tests.e2e.outages import JOBS
from tests.e2e.serving import serving, tenant_with_keys

pytestmark = pytest.mark.slow

CLIENTS = 24
BEATS = 3  # each session's, before its batches; half of them beat once more
BATCHES = 3
EVENTS = 5  # a session's, in each batch


@pytest.fixture(params=["postgresql", "sqlite"])
def grouping_storage_url(request: pytest.FixtureRequest, databases: Databases) -> Iterator[str]:
    """The stores whose writes of concurrent requests go together: PostgreSQL's statements,
    SQLite's commits (adapters/sqlalchemy/sqlite_statements.py)."""
    with databases.fresh(request.param) as url:
        yield url


def now() -> str:
    return datetime.now(UTC).isoformat()


async def sent_at_once(base_url: str, key: str, posts: list[tuple[str, Any]]) -> list[Any]:
    """Each POST on a connection of its own, all written before any answer is read (an HTTP
    client library spends longer on a request than the server's statement takes, and the
    requests would arrive one by one): the status and JSON body of each."""
    host, port = base_url.removeprefix("http://").split(":")
    opened = [await asyncio.open_connection(host, int(port)) for _ in posts]
    for (path, body), (_, writer) in zip(posts, opened, strict=True):
        content = json.dumps(body).encode()
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(content)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + content
        )
    answers = []
    for reader, writer in opened:
        head, _, body = (await reader.read()).partition(b"\r\n\r\n")
        writer.close()
        answers.append((int(head.split()[1]), json.loads(body)))
    return answers


async def the_webinar(base_url: str, key: str) -> dict[str, Any]:
    """CLIENTS sessions each started twice at once, all at once; each beaten BEATS times; each
    sent BATCHES batches, each twice at once; all ended at once, each twice (a beacon and a
    fetch): the answers of each step."""
    ids = [str(uuid.uuid4()) for _ in range(CLIENTS)]
    starts = [
        ("/v1/sessions", {"id": i, "kind": "webinar", "resource_id": "hall", "subject_id": i})
        for i in ids
    ]
    answers = {"starts": await sent_at_once(base_url, key, starts + starts)}
    beats: list[tuple[str, Any]] = [(f"/v1/sessions/{i}/heartbeat", {}) for i in ids]
    answers["beats"] = [await sent_at_once(base_url, key, beats) for _ in range(BEATS)]
    answers["batches"] = []
    for round_ in range(BATCHES):
        await asyncio.sleep(1)  # within the key's rate: 200 requests a second
        batches = [("/v1/events/batch", {"events": events(i, 1 + round_ * EVENTS)}) for i in ids]
        answers["batches"].append(await sent_at_once(base_url, key, batches + batches))
        if round_ == BATCHES - 2:
            # Half the sessions beat before their last batch: on PostgreSQL the server remembers
            # the others as their batch left them, and these as they no longer are.
            answers["beats"].append(await sent_at_once(base_url, key, beats[: CLIENTS // 2]))
    await asyncio.sleep(1)
    exits = [(f"/v1/sessions/{i}/exit", {"at": now()}) for i in ids]
    answers["exits"] = await sent_at_once(base_url, key, exits + exits)
    answers["ids"] = ids
    return answers


def events(session_id: str, first: int) -> list[dict[str, Any]]:
    """EVENTS events of now, numbered from `first`, each a second of a meter."""
    return [
        {
            "session_id": session_id,
            "sequence_no": n,
            "type": "tap",
            "at": now(),
            "meters": {"seconds": 1},
        }
        for n in range(first, first + EVENTS)
    ]


async def writers_of(storage_url: str, ids: list[str]) -> set[int]:
    """The transactions that wrote these sessions' rows last (PostgreSQL's xmin)."""
    connection = await asyncpg.connect(storage_url)
    try:
        rows = await connection.fetch(
            "SELECT xmin::text::bigint AS x FROM sessions WHERE id = ANY($1::varchar[])", ids
        )
    finally:
        await connection.close()
    return {row["x"] for row in rows}


def test_many_clients_at_once_each_start_beat_and_end_once(
    tmp_path: Path, grouping_storage_url: str
) -> None:
    key = tenant_with_keys(grouping_storage_url, "acme", ["app"])["app"]
    with serving(tmp_path, storage_url=grouping_storage_url, **JOBS) as server:
        webinar = asyncio.run(the_webinar(server.base_url, key))
        with httpx.Client(base_url=server.base_url, headers={"X-API-Key": key}) as app:
            stored = [app.get(f"/v1/sessions/{i}").json() for i in webinar["ids"]]

    for n, session in enumerate(stored):
        first, again = webinar["starts"][n], webinar["starts"][n + CLIENTS]
        assert sorted((first[0], again[0])) == [200, 201], (first, again)
        assert first[1] == again[1]
        beats = [each[n] for each in webinar["beats"] if n < len(each)]
        assert [status for status, _ in beats] == [200] * (BEATS + (n < CLIENTS // 2)), beats
        ended, replayed = webinar["exits"][n], webinar["exits"][n + CLIENTS]
        assert (ended[0], replayed[0]) == (200, 200), (ended, replayed)
        assert ended[1] == replayed[1]
        assert session["status"] == "completed", session
        assert session["ended_at"] == ended[1]["ended_at"]
        seen = datetime.fromisoformat(session["last_seen_at"])
        assert seen >= datetime.fromisoformat(beats[-1][1]["last_seen_at"])
        for sent in webinar["batches"]:
            answers = [sent[n], sent[n + CLIENTS]]
            assert [status for status, _ in answers] == [200, 200], answers
            assert sorted(body["inserted"] for _, body in answers) == [0, EVENTS], answers
            assert [body["failed"] for _, body in answers] == [0, 0], answers
        assert (session["event_count"], session["usage"]) == (
            BATCHES * EVENTS,
            {"seconds": BATCHES * EVENTS},
        ), session

    if grouping_storage_url.startswith("postgresql"):
        writers = run_async(lambda: writers_of(grouping_storage_url, webinar["ids"]))
        assert len(writers) < CLIENTS
