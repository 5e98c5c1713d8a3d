"""A seed fleet's day of sessions and events through a real server, timed end to end.

    .venv/bin/python benchmarks/seed_fleet.py [--sessions 50000] [--events-per-session 30]
                                              [--clients 32] [--storage postgresql|sqlite]

Issue 15's "seed-fleet day": 50,000 kiosk sessions with their exits and 1,500,000 events in
batches of 50, through HTTP on one server worker; the target is under 2 minutes. --clients
concurrent clients play kiosks: each takes the next 5 sessions from a shared counter, starts them
(POST /v1/sessions, an ingest key), flushes their events in batches of 50 mixed across the 5 (a
kiosk's buffer flushing, the events dated now and numbered per session), exits the 5, and takes
the next 5. Every batch must store all it was sent. At the end 200 sessions drawn at random are
read back (GET /v1/sessions/{id}): each must be completed with all its events counted. Prints the
wall time, sessions and events per second, and the server's peak resident memory.
"""

import argparse
import asyncio
import itertools
import os
import random
import time
from collections.abc import Iterator
from typing import Any

import msgspec
from harness import (
    Connection,
    Service,
    analyze,
    api_headers,
    connections,
    now,
    peak_rss_while,
    rss_line,
    service,
)

OPEN_PER_CLIENT = 5  # sessions a client holds open at once
EVENT_BATCH = 50
RESOURCES = 200
CHECKED = 200  # sessions read back at the end
TARGET_SECONDS = 120.0
# When the tables get the planner's statistics (harness.analyze): a deployment's have them; a fresh
# database gets them from autovacuum about a minute after they fill.
ANALYZE_AFTER_SECONDS = 5.0
# The MongoDB test server (SecantusDB, in Python) would take hours over this many events.
STORAGES = ("postgresql", "sqlite")


async def posted(http: Connection, path: str, body: Any, status: int) -> Any:
    answered, answer = await http.request("POST", path, msgspec.json.encode(body))
    assert answered == status, f"{path}: {answered} {answer!r}"
    return msgspec.json.decode(answer)


async def start(http: Connection, n: int) -> str:
    body = {"kind": "kiosk", "resource_id": f"booth{n % RESOURCES}", "subject_id": f"s{n}"}
    return str((await posted(http, "/v1/sessions", body, 201))["id"])


def event_batches(session_ids: list[str], per_session: int) -> Iterator[list[dict[str, Any]]]:
    """The open sessions' events as they happen, the sessions taking turns, a batch at a time;
    each is dated when its batch is made."""
    events = (
        {"session_id": session_id, "sequence_no": n, "type": "tap", "at": now(), "label": "green"}
        for n in range(1, per_session + 1)
        for session_id in session_ids
    )
    while batch := list(itertools.islice(events, EVENT_BATCH)):
        yield batch


async def kiosk(http: Connection, numbers: range, per_session: int) -> list[str]:
    """Some sessions of a kiosk, start to exit; their ids."""
    session_ids = [await start(http, n) for n in numbers]
    for batch in event_batches(session_ids, per_session):
        stored = await posted(http, "/v1/events/batch", {"events": batch}, 200)
        assert (stored["inserted"], stored["failed"]) == (len(batch), 0), stored
    for session_id in session_ids:
        await posted(http, f"/v1/sessions/{session_id}/exit", {}, 200)
    return session_ids


async def check(http: Connection, session_ids: list[str], per_session: int) -> int:
    """Read a sample back: each session completed with all its events; how many were read."""
    sample = random.Random(15).sample(session_ids, min(CHECKED, len(session_ids)))
    for session_id in sample:
        status, answer = await http.request("GET", f"/v1/sessions/{session_id}")
        session = msgspec.json.decode(answer)
        assert status == 200, session
        assert session["status"] == "completed", session
        assert session["event_count"] == per_session, session
    return len(sample)


async def fleet(svc: Service, key: str, args: argparse.Namespace) -> dict[str, float]:
    # Shared by the clients: each takes the next group of sessions when it is free.
    groups = (
        range(first, min(first + OPEN_PER_CLIENT, args.sessions))
        for first in range(0, args.sessions, OPEN_PER_CLIENT)
    )
    session_ids: list[str] = []
    async with connections(svc.base, args.clients, api_headers(key)) as http:

        async def client(connection: Connection) -> None:
            for numbers in groups:
                session_ids.extend(await kiosk(connection, numbers, args.events_per_session))

        async def analysed() -> None:
            await asyncio.sleep(ANALYZE_AFTER_SECONDS)
            await analyze(svc.storage_url)

        started = time.perf_counter()
        analysing = asyncio.create_task(analysed())
        await asyncio.gather(*(client(connection) for connection in http))
        seconds = time.perf_counter() - started
        analysing.cancel()
        assert len(session_ids) == args.sessions
        checked = await check(http[0], session_ids, args.events_per_session)
    return {"seconds": seconds, "checked": checked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=50_000)
    parser.add_argument("--events-per-session", type=int, default=30)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--storage", choices=STORAGES, default="postgresql")
    args = parser.parse_args()

    with service(1, args.storage) as svc:
        svc.unlimited_tenant("fleet")
        key = svc.cli("keys", "create", "--tenant", "fleet", "--role", "ingest")
        figures = asyncio.run(peak_rss_while(svc.process.pid, fleet(svc, key, args)))

    seconds, events = figures["seconds"], args.sessions * args.events_per_session
    print(
        f"seed-fleet day on {args.storage}, 1 server worker, {args.clients} clients holding"
        f" {OPEN_PER_CLIENT} sessions each; {os.cpu_count()} cores shared by client, server and"
        " database"
    )
    print(
        f"  {args.sessions:,} sessions with exits, {events:,} events in batches of {EVENT_BATCH}:"
        f" {seconds:.1f} s (target < {TARGET_SECONDS:.0f} s for 50,000 and 1,500,000)"
    )
    print(f"  {args.sessions / seconds:,.0f} sessions/s, {events / seconds:,.0f} events/s")
    print(
        f"  every batch stored all it was sent; {figures['checked']:.0f} sessions read back,"
        f" each completed with its {args.events_per_session} events"
    )
    print(f"  {rss_line(figures, 1)}")


if __name__ == "__main__":
    main()
