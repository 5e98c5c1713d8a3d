"""Ingest throughput through a real server process on PostgreSQL, next to the driver's own rate.

    .venv/bin/python benchmarks/ingest.py [--seconds 10] [--clients 32] [--workers 1]

Starts a throwaway PostgreSQL server and `sessionmeter serve` on it, then measures, each for
--seconds:
  (a) session start+exit pairs per second from --clients concurrent HTTP clients, next to the same
      two writes (INSERT the session, UPDATE it closed) done directly with asyncpg by as many tasks;
  (b) events per second through POST /v1/events/batch in batches of 100, next to the same rows
      written directly with asyncpg's executemany, batch by batch.
It prints each rate, the ratio HTTP / direct, and the server's peak resident memory (RSS, summed
over its worker processes). Client and server share this machine's cores, as they would in a
small deployment; the ratio is the figure to watch.
"""

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import PostgresServer  # noqa: E402

SESSIONMETER = Path(sys.executable).parent / "sessionmeter"
BATCH = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(SESSIONMETER), *args], env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()[-1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


async def run_for(seconds: float, clients: int, one: Callable[[int], Awaitable[int]]) -> float:
    """Run `one` in a loop in `clients` tasks for `seconds`; return units done per second."""
    deadline = time.perf_counter() + seconds
    done = [0] * clients

    async def client(i: int) -> None:
        while time.perf_counter() < deadline:
            done[i] += await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return sum(done) / (time.perf_counter() - started)


def now() -> str:
    return datetime.now(UTC).isoformat()


def http_client(base: str, key: str, clients: int) -> aiohttp.ClientSession:
    # aiohttp rather than httpx: at 32 concurrent requests httpx's own overhead, on the cores
    # the server needs too, would be what this measures.
    connector = aiohttp.TCPConnector(limit=clients)
    return aiohttp.ClientSession(base, headers={"X-API-Key": key}, connector=connector)


async def http_lifecycle(base: str, key: str, seconds: float, clients: int) -> float:
    async with http_client(base, key, clients) as http:

        async def pair(i: int) -> int:
            body = {"kind": "webinar", "resource_id": "w1", "subject_id": f"u{i}"}
            async with http.post("/v1/sessions", json=body) as started:
                assert started.status == 201, await started.text()
                session_id = (await started.json())["id"]
            async with http.post(f"/v1/sessions/{session_id}/exit", json={}) as ended:
                assert ended.status == 200, await ended.text()
            return 1

        return await run_for(seconds, clients, pair)


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


async def http_events(
    base: str, key: str, sessions: list[str], seconds: float, clients: int
) -> float:
    next_no = [0] * clients
    async with http_client(base, key, clients) as http:

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

        return await run_for(seconds, clients, batch)


async def direct_events(
    pool: asyncpg.Pool, tenant_id: str, sessions: list[str], seconds: float, clients: int
) -> float:
    # Same rows, same per-batch session update, started far above the HTTP run's numbers.
    next_no = [10_000_000] * clients

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

    return await run_for(seconds, clients, batch)


async def measure(
    args: argparse.Namespace,
    server: subprocess.Popen[bytes],
    base: str,
    key: str,
    dsn: str,
    tenant_id: str,
) -> dict[str, float]:
    peak = 0.0

    async def sample_memory() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_mb(server.pid))
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample_memory())
    event_clients = 8
    pool = await asyncpg.create_pool(dsn, min_size=args.clients, max_size=args.clients)
    try:
        figures = {
            "http_pairs": await http_lifecycle(base, key, args.seconds, args.clients),
            "direct_pairs": await direct_lifecycle(pool, tenant_id, args.seconds, args.clients),
        }
        sessions = await open_sessions(base, key, event_clients)
        figures["http_events"] = await http_events(base, key, sessions, args.seconds, event_clients)
        figures["direct_events"] = await direct_events(
            pool, tenant_id, sessions, args.seconds, event_clients
        )
    finally:
        await pool.close()
        sampler.cancel()
    figures["peak_rss_mb"] = peak
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    with PostgresServer() as postgres:
        env = {**os.environ, "SESSIONMETER_STORAGE_URL": postgres.url}
        cli(env, "db", "upgrade")
        cli(env, "tenants", "create", "bench")
        key = cli(env, "keys", "create", "--tenant", "bench", "--role", "ingest")
        port = free_port()
        server = subprocess.Popen(
            [
                str(SESSIONMETER),
                "serve",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
            ],
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    if httpx.get(f"{base}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            else:
                raise SystemExit("the server did not become healthy")
            dsn = postgres.url
            tenant_id = asyncio.run(tenant_of(dsn))
            figures = asyncio.run(measure(args, server, base, key, dsn, tenant_id))
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(
        f"PostgreSQL 15, {os.cpu_count()} cores shared by client, server and database;"
        f" {args.workers} server worker(s), {args.seconds:.0f} s per figure"
    )
    print(
        f"(a) start+exit pairs/s, {args.clients} clients: HTTP {figures['http_pairs']:.0f}"
        f"  direct asyncpg {figures['direct_pairs']:.0f}"
        f"  ratio {figures['http_pairs'] / figures['direct_pairs']:.1%}"
    )
    print(
        f"(b) events/s, batches of {BATCH}, 8 clients: HTTP {figures['http_events']:.0f}"
        f"  direct asyncpg {figures['direct_events']:.0f}"
        f"  ratio {figures['http_events'] / figures['direct_events']:.1%}"
    )
    print(f"server peak RSS: {figures['peak_rss_mb']:.0f} MB")


async def tenant_of(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SELECT id FROM tenants WHERE name = 'bench'"))
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
