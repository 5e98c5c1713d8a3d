"""The reaper's backlog: how long the server's reaper takes to close and charge 20,000 stale rated
sessions, and what the requests served meanwhile wait.

    .venv/bin/python benchmarks/reaper.py [--sessions 20000] [--subjects 2000]
                                          [--storage postgresql|sqlite]

A real `sessionmeter serve` (one worker) on a throwaway PostgreSQL, or on a SQLite file in a
temporary directory, its reaper running every second. A tenant prices kind `counseling` at 2
credits a minute and grants --subjects subjects credits (through the API). Then --sessions active
counseling sessions of those subjects, silent for an hour (the idle timeout is 300 s), are
written straight into the database in the service's own column formats (COPY on PostgreSQL; the
service's own table and row format, executemany, on SQLite), and the server's next reaper run
finds them: it closes them as timed_out and charges each. Meanwhile clients ask /health and start
sessions (POST /v1/sessions, the write), two of each, one request at a time each, a 20 ms pause
between. The database is polled every 100 ms.

Prints the sessions, the seconds from the first session closed to none active and none pending
(and from the moment the rows were committed, which adds up to a reaper interval), the p95 of
/health and of a start during that time, and checks the books: one charge entry per session,
each subject's balance equal to the sum of its ledger.
"""

import argparse
import asyncio
import os
import sqlite3
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
from harness import Service, http_client, service, store_sessions

KIND = "counseling"
RATE_PER_MINUTE = 2
GRANT = 1_000_000
POLL_SECONDS = 0.1
PAUSE_SECONDS = 0.02
CLIENTS_EACH = 2


@contextmanager
def reaping_service(storage: str) -> Iterator[Service]:
    """`sessionmeter serve` on a throwaway database of `storage`, reaping every second."""
    os.environ["SESSIONMETER_REAPER_INTERVAL_SECONDS"] = "1"
    os.environ["SESSIONMETER_ROLLUP_INTERVAL_SECONDS"] = "3600"
    with service(storage=storage) as svc:
        yield svc


def stale_sessions(tenant_id: str, count: int, subjects: int) -> list[dict[str, Any]]:
    """Active sessions of the rated kind, started two hours ago, last seen an hour ago."""
    now = datetime.now(UTC)
    started, seen = now - timedelta(hours=2), now - timedelta(hours=1)
    return [
        {
            "tenant_id": tenant_id,
            "id": str(uuid.uuid4()),
            "kind": KIND,
            "resource_id": f"room-{i % 50}",
            "subject_id": f"student-{i % subjects:05d}",
            "status": "active",
            "started_at": started + timedelta(milliseconds=i),
            "last_seen_at": seen + timedelta(milliseconds=i),
            "ended_at": None,
            "attributes": {},
            "event_count": 0,
            "max_sequence_no": 0,
            "charge_state": "none",
        }
        for i in range(count)
    ]


class Books:
    """The benchmark's own look at the database: seeding it, and polling what the reaper left."""

    # Two counts each an index can answer (sessions by status, and by charge state): the poll
    # must not load the database it watches.
    COUNTS = (
        "SELECT (SELECT count(*) FROM sessions WHERE tenant_id = {p} AND status = 'active'"
        " AND kind = '" + KIND + "'),"
        " (SELECT count(*) FROM sessions WHERE tenant_id = {p} AND charge_state = 'pending')"
    )
    CHECK = (
        "SELECT (SELECT count(*) FROM ledger_entries WHERE tenant_id = {p} AND kind = 'charge'),"
        " (SELECT count(DISTINCT session_id) FROM ledger_entries"
        "  WHERE tenant_id = {p} AND kind = 'charge'),"
        " (SELECT count(*) FROM sessions WHERE tenant_id = {p} AND kind = '" + KIND + "'"
        "  AND charge_state = 'charged' AND charge_credits IS NOT NULL),"
        " (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE tenant_id = {p}),"
        " (SELECT coalesce(sum(charge_credits), 0) FROM sessions WHERE tenant_id = {p})"
    )

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite")

    async def seed(self, rows: list[dict[str, Any]], analyze: bool) -> None:
        await store_sessions(self.url, rows, analyze)

    async def counts(self) -> tuple[int, int]:
        active, pending = await self._one(self.COUNTS)
        return active, pending

    async def check(self) -> tuple[int, ...]:
        return await self._one(self.CHECK)

    async def _one(self, query: str) -> tuple[int, ...]:
        if self.sqlite:
            return await asyncio.to_thread(self._one_sqlite, query)
        conn = await asyncpg.connect(self.url)
        try:
            row = await conn.fetchrow(query.format(p="$1"), self.tenant_id)
        finally:
            await conn.close()
        return tuple(int(v or 0) for v in row)

    def _one_sqlite(self, query: str) -> tuple[int, ...]:
        conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=30)
        try:
            row = conn.execute(
                query.format(p="?"), [self.tenant_id] * query.count("{p}")
            ).fetchone()
        finally:
            conn.close()
        return tuple(int(v or 0) for v in row)

    tenant_id = ""


async def prepare(svc: Service, key: str, subjects: int) -> None:
    """The rate, and a grant to every subject."""
    async with http_client(svc.base, key, 16) as http:
        async with http.put(f"/v1/rates/{KIND}", json={"credits_per_minute": RATE_PER_MINUTE}) as r:
            assert r.status == 200, await r.text()
        todo = iter(range(subjects))

        async def granting() -> None:
            for i in todo:
                body = {"amount": GRANT, "reason": "bench", "idempotency_key": f"g{i}"}
                path = f"/v1/accounts/student-{i:05d}/credits/grants"
                async with http.post(path, json=body) as r:
                    assert r.status == 201, await r.text()

        await asyncio.gather(*(granting() for _ in range(16)))


async def measure(
    svc: Service, key: str, books: Books, sessions: int, subjects: int, analyze: bool
) -> None:
    rows = stale_sessions(books.tenant_id, sessions, subjects)
    health: list[tuple[float, float]] = []
    writes: list[tuple[float, float]] = []
    stop = asyncio.Event()

    async def ask_health(http: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            sent = time.perf_counter()
            async with http.get("/health") as r:
                assert r.status == 200, await r.text()
            health.append((sent, time.perf_counter() - sent))
            await asyncio.sleep(PAUSE_SECONDS)

    async def start_sessions(http: aiohttp.ClientSession, i: int) -> None:
        while not stop.is_set():
            body = {"kind": "webinar", "resource_id": "w1", "subject_id": f"writer-{i}"}
            sent = time.perf_counter()
            async with http.post("/v1/sessions", json=body) as r:
                assert r.status == 201, await r.text()
            writes.append((sent, time.perf_counter() - sent))
            await asyncio.sleep(PAUSE_SECONDS)

    async with http_client(svc.base, key, 2 * CLIENTS_EACH) as http:
        clients = [
            *(asyncio.create_task(ask_health(http)) for _ in range(CLIENTS_EACH)),
            *(asyncio.create_task(start_sessions(http, i)) for i in range(CLIENTS_EACH)),
        ]
        await asyncio.sleep(1.0)  # the clients warm up; the reaper finds nothing yet
        await books.seed(rows, analyze)
        committed = time.perf_counter()
        first_closed = None
        while True:
            active, pending = await books.counts()
            if first_closed is None and active < sessions:
                first_closed = time.perf_counter()
            if active == 0 and pending == 0:
                break
            await asyncio.sleep(POLL_SECONDS)
        done = time.perf_counter()
        stop.set()
        await asyncio.gather(*clients)

    assert first_closed is not None
    during = [latency for sent, latency in health if first_closed <= sent <= done]
    written = [latency for sent, latency in writes if first_closed <= sent <= done]
    charges, charged_sessions, settled, ledger_sum, charged_credits = await books.check()
    minutes_each = 60  # started two hours ago, last seen one hour ago: 60 minutes
    expected = sessions * minutes_each * RATE_PER_MINUTE
    print(
        f"storage:                     {'sqlite' if books.sqlite else 'postgresql'}"
        f"{' (analyzed)' if analyze else ''}"
    )
    print(f"sessions:                    {sessions} ({subjects} subjects)")
    print(f"close+charge all (s):        {done - first_closed:.1f}")
    print(f"  from the rows' commit (s): {done - committed:.1f}  (reaper runs every 1 s)")
    print(f"health p95 (ms):             {p95(during):.0f}  ({len(during)} requests)")
    print(f"write p95 (ms):              {p95(written):.0f}  ({len(written)} session starts)")
    print(f"health max / write max (ms): {max(during) * 1000:.0f} / {max(written) * 1000:.0f}")
    books_ok = (
        charges == charged_sessions == settled == sessions
        and charged_credits == expected
        and ledger_sum == subjects * GRANT - expected
    )
    print(
        f"books: {charges} charge entries for {charged_sessions} sessions, {settled} charged,"
        f" {charged_credits} credits (expected {expected}); ledger sum {ledger_sum}"
        f" -> {'ok' if books_ok else 'WRONG'}"
    )


def p95(latencies: list[float]) -> float:
    if len(latencies) < 2:
        return latencies[0] * 1000 if latencies else float("nan")
    return statistics.quantiles(latencies, n=20)[-1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--subjects", type=int, default=2_000)
    parser.add_argument("--storage", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="ANALYZE the sessions once written, as autovacuum would on a live database "
        "(default: the statistics of the empty table, as right after a bulk load)",
    )
    args = parser.parse_args()

    with reaping_service(args.storage) as svc:
        tenant_id = svc.unlimited_tenant("bench")
        key = svc.cli("keys", "create", "--tenant", "bench", "--role", "admin")
        books = Books(svc.storage_url)
        books.tenant_id = tenant_id
        asyncio.run(prepare(svc, key, args.subjects))
        asyncio.run(measure(svc, key, books, args.sessions, args.subjects, args.analyze))


if __name__ == "__main__":
    main()
