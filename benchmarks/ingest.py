"""Ingest throughput through a real server process, next to the database driver's own rate.

    .venv/bin/python benchmarks/ingest.py [--seconds 10] [--clients 32] [--workers 1]
                                          [--storage postgresql|mongodb]

Measures, each for --seconds:
  (a) session start+exit pairs per second from --clients concurrent HTTP clients, next to the same
      two writes (INSERT the session, UPDATE it closed) done directly with asyncpg by as many tasks;
  (b) events per second through POST /v1/events/batch in batches of 100, next to the same rows
      written directly with asyncpg's executemany, batch by batch.
It prints each rate, the ratio HTTP / direct, and the server's peak resident memory (RSS, summed
over its worker processes). Client and server share this machine's cores, as they would in a
small deployment; the ratio is the figure to watch. With --storage mongodb the database is the
MongoDB test server (SecantusDB, in Python): its figures show relative cost only, and the direct
writes are pymongo's (insert_one + update_one; insert_many + update_one).
"""

import argparse
import asyncio
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from harness import (
    STORAGES,
    Service,
    http_client,
    lifecycles,
    now,
    peak_rss_while,
    run_for,
    service,
)
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

BATCH = 100
EVENT_CLIENTS = 8


async def direct_lifecycle(
    pool: asyncpg.Pool, tenant_id: str, seconds: float, clients: int
) -> float:
    async def pair(i: int) -> int:
        session_id = str(uuid.uuid4())
        at = datetime.now(UTC)
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO sessions (tenant_id, id, kind, resource_id, subject_id, status,"
                " started_at, last_seen_at, attributes, event_count, max_sequence_no, charge_state)"
                " VALUES ($1, $2, 'webinar', 'w1', $3, 'active', $4, $4, '{}', 0, 0, 'none')",
                tenant_id,
                session_id,
                f"u{i}",
                at,
            )
            await conn.execute(
                "UPDATE sessions SET status = 'completed', ended_at = $3, last_seen_at = $3,"
                " charge_state = 'not_charged' WHERE tenant_id = $1 AND id = $2 AND status = 'active'",
                tenant_id,
                session_id,
                datetime.now(UTC),
            )
        return 1

    return await run_for(seconds, clients, pair)


async def open_sessions(base: str, key: str, count: int) -> list[str]:
    async with http_client(base, key, 1) as http:
        ids = []
        for i in range(count):
            body = {"kind": "kiosk", "resource_id": "booth", "subject_id": f"k{i}"}
            async with http.post("/v1/sessions", json=body) as r:
                ids.append((await r.json())["id"])
        return ids


async def http_events(base: str, key: str, sessions: list[str], seconds: float) -> float:
    next_no = [0] * len(sessions)
    async with http_client(base, key, len(sessions)) as http:

        async def batch(i: int) -> int:
            first = next_no[i] + 1
            next_no[i] += BATCH
            events = [
                {
                    "session_id": sessions[i],
                    "sequence_no": n,
                    "type": "tap",
                    "at": now(),
                    "label": "green",
                    "meters": {"taps": 1},
                }
                for n in range(first, first + BATCH)
            ]
            async with http.post("/v1/events/batch", json={"events": events}) as r:
                result = await r.json()
                assert result["inserted"] == BATCH, result
            return BATCH

        return await run_for(seconds, len(sessions), batch)


async def direct_events(
    pool: asyncpg.Pool, tenant_id: str, sessions: list[str], seconds: float
) -> float:
    # Same rows, same per-batch session update, numbered far above the HTTP run's numbers.
    next_no = [10_000_000] * len(sessions)

    async def batch(i: int) -> int:
        first = next_no[i] + 1
        next_no[i] += BATCH
        at = datetime.now(UTC)
        rows = [
            (tenant_id, sessions[i], n, "tap", at, "green", '{"taps": 1}')
            for n in range(first, first + BATCH)
        ]
        async with pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO events (tenant_id, session_id, sequence_no, type, at, label, meters)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                rows,
            )
            await conn.execute(
                "UPDATE sessions SET event_count = event_count + $3,"
                " max_sequence_no = greatest(max_sequence_no, $4)"
                " WHERE tenant_id = $1 AND id = $2",
                tenant_id,
                sessions[i],
                BATCH,
                next_no[i],
            )
        return BATCH

    return await run_for(seconds, len(sessions), batch)


async def mongo_lifecycle(
    db: AsyncDatabase[dict[str, Any]], tenant_id: str, seconds: float, clients: int
) -> float:
    async def pair(i: int) -> int:
        session_id = str(uuid.uuid4())
        at = datetime.now(UTC)
        await db["sessions"].insert_one(
            {
                "tenant_id": tenant_id,
                "id": session_id,
                "kind": "webinar",
                "resource_id": "w1",
                "subject_id": f"u{i}",
                "status": "active",
                "started_at": at,
                "last_seen_at": at,
                "attributes": {},
                "usage": {},
                "event_count": 0,
                "max_sequence_no": 0,
                "charge_state": "none",
            }
        )
        ended = datetime.now(UTC)
        await db["sessions"].update_one(
            {"tenant_id": tenant_id, "id": session_id, "status": "active"},
            {"$set": {"status": "completed", "ended_at": ended, "last_seen_at": ended}},
        )
        return 1

    return await run_for(seconds, clients, pair)


async def mongo_events(
    db: AsyncDatabase[dict[str, Any]], tenant_id: str, sessions: list[str], seconds: float
) -> float:
    next_no = [10_000_000] * len(sessions)

    async def batch(i: int) -> int:
        first = next_no[i] + 1
        next_no[i] += BATCH
        at = datetime.now(UTC)
        await db["events"].insert_many(
            [
                {
                    "tenant_id": tenant_id,
                    "session_id": sessions[i],
                    "sequence_no": n,
                    "type": "tap",
                    "at": at,
                    "label": "green",
                    "meters": {"taps": 1},
                }
                for n in range(first, first + BATCH)
            ],
            ordered=False,
        )
        await db["sessions"].update_one(
            {"tenant_id": tenant_id, "id": sessions[i]},
            {"$inc": {"event_count": BATCH, "usage.taps": BATCH}},
        )
        return BATCH

    return await run_for(seconds, len(sessions), batch)


async def measure(
    args: argparse.Namespace, svc: Service, key: str, tenant_id: str
) -> dict[str, float]:
    figures = {"http_pairs": await lifecycles(svc.base, key, args.seconds, args.clients, "webinar")}
    sessions = await open_sessions(svc.base, key, EVENT_CLIENTS)
    figures["http_events"] = await http_events(svc.base, key, sessions, args.seconds)
    if args.storage == "mongodb":
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(svc.storage_url, tz_aware=True)
        db = client.get_default_database()
        try:
            figures["direct_pairs"] = await mongo_lifecycle(
                db, tenant_id, args.seconds, args.clients
            )
            figures["direct_events"] = await mongo_events(db, tenant_id, sessions, args.seconds)
        finally:
            await client.close()
        return figures
    pool = await asyncpg.create_pool(svc.storage_url, min_size=args.clients, max_size=args.clients)
    try:
        figures["direct_pairs"] = await direct_lifecycle(
            pool, tenant_id, args.seconds, args.clients
        )
        figures["direct_events"] = await direct_events(pool, tenant_id, sessions, args.seconds)
    finally:
        await pool.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--storage", choices=STORAGES, default="postgresql")
    args = parser.parse_args()

    with service(args.workers, args.storage) as svc:
        # "tenant bench created (id …)"
        tenant_id = svc.unlimited_tenant("bench")
        key = svc.cli("keys", "create", "--tenant", "bench", "--role", "ingest")
        figures = asyncio.run(peak_rss_while(svc.process.pid, measure(args, svc, key, tenant_id)))

    print(
        f"{args.storage}, {os.cpu_count()} cores shared by client, server and database;"
        f" {args.workers} server worker(s), {args.seconds:.0f} s per figure"
    )
    print(
        f"(a) start+exit pairs/s, {args.clients} clients: HTTP {figures['http_pairs']:.0f}"
        f"  direct {figures['direct_pairs']:.0f}"
        f"  ratio {figures['http_pairs'] / figures['direct_pairs']:.1%}"
    )
    print(
        f"(b) events/s, batches of {BATCH}, {EVENT_CLIENTS} clients: HTTP {figures['http_events']:.0f}"
        f"  direct {figures['direct_events']:.0f}"
        f"  ratio {figures['http_events'] / figures['direct_events']:.1%}"
    )
    print(f"server peak RSS: {figures['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
