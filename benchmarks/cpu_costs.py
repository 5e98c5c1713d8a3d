"""Where the CPU of a start+exit pair and of a batch of events goes, written directly and
through HTTP.

    .venv/bin/python benchmarks/cpu_costs.py [--seconds 10] [--clients 32] [--rounds 2]
                                             [--storage postgresql|sqlite]

The figures of ingest.py are ratios of two rates on 2 shared cores; this one says what each
unit of work costs each party, so that a ratio can be read as arithmetic. In turns, --rounds
times each, for --seconds:
  pairs, --clients clients:
    direct   asyncpg, INSERT then UPDATE, each its own transaction (SQLite: the sqlite3
             module in 8 threads on the server's file, the same writes);
    direct, grouped (PostgreSQL): the service's statements as it sends them under load, each
             grouped with the other clients' of its kind (ingest.py's pg_grouped_pairs);
    direct, the service's statements (PostgreSQL): the two statements the service sends
             for a pair that nothing joins, sent with asyncpg (ingest.py's pg_service_pairs);
    HTTP     POST /v1/sessions then POST /v1/sessions/{id}/exit (harness.lifecycles);
    floor    two GET /v1/tracker.js: requests through the same client, uvicorn and Litestar with
             no key, no body and no storage, what a pair costs before the service does anything;
  batches of 100 events, 8 clients, each on a session of its own:
    direct   asyncpg, the rows as arrays (unnest) and the session's count in one statement
             (SQLite: sqlite3's executemany, one thread);
    direct, the service's statements (PostgreSQL): its read of the sessions and its insert
             and count unless they changed (ingest.py's pg_service_batches);
    HTTP     POST /v1/events/batch (ingest.py's http_events); an ingest key, as ingest.py's;
    floor    one GET /v1/tracker.js: a lower bound, since it carries no body.
For each: units per second; CPU microseconds per unit (user + system) of the client (this
process), the server (its one worker; then, in brackets, of it its event loop's thread, the
rest being SQLite's connection threads) and PostgreSQL (the postmaster and its backends; SQLite
works inside the client or the server), and their total; PostgreSQL's write transactions per
unit (transaction ids handed out: a statement that only reads takes none); the statements
PostgreSQL is running at once, on average (what a server coalescing concurrent requests'
statements into one could group: pg_stat_activity, sampled every 100 ms, each sample about
0.7 ms of the client's CPU and as much of PostgreSQL's, counted in theirs); the rate that total
would give if the machine's cores did nothing else; how much of a core the machine left idle
meanwhile (/proc/stat), and the share of the time the server was ready to run but had no core
(its run queue wait, /proc/PID/schedstat).
When the cores are full that is close to the measured rate, and the HTTP ratio is then the
direct total over the HTTP total. When they are not, yet the server waited for one, the
machine's scheduler left a core idle while the server was ready to run (on this VM, 2026-12-07,
under the HTTP batches: the one worker waited about a quarter of the time while the cores were
idle a fifth; the one statement's 8 connections left them idle 4 %). Last, the ceiling of that
ratio: the direct total over itself plus the floor's, were the service's own steps free.
"""

import argparse
import asyncio
import os
import resource
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from harness import (
    Service,
    analyze,
    connections,
    cpu_seconds,
    idle_core_seconds,
    lifecycles,
    main_thread_cpu_seconds,
    run_for,
    run_queue_seconds,
    service,
)
from ingest import BATCH, EVENT_CLIENTS, Numbers, direct_ways, http_events, open_sessions

Way = Callable[[float], Awaitable[float]]  # seconds -> units per second

SAMPLE_EVERY = 0.1  # seconds: each sample costs both sides about 0.7 ms of CPU
# One past the last transaction id handed out and finished: between two loads, when nothing that
# writes is under way, the transactions that wrote (the server's jobs' and autovacuum's too).
TRANSACTION_IDS = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
IN_FLIGHT = (
    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


@dataclass
class Costs:
    units: int = 0  # pairs or batches
    seconds: float = 0.0
    client: float = 0.0  # CPU seconds
    server: float = 0.0
    server_loop: float = 0.0  # of it, the event loop's thread (the rest: SQLite's threads)
    database: float = 0.0
    writes: int = 0  # PostgreSQL's write transactions
    idle: float = 0.0  # core seconds the machine had nothing to run
    server_waited: float = 0.0  # seconds the server was ready to run but had no core
    in_flight: list[int] = field(default_factory=list)  # statements running, sampled

    @property
    def rate(self) -> float:
        return self.units / self.seconds

    def per_unit(self, cpu_seconds: float) -> float:
        return cpu_seconds / self.units * 1e6

    @property
    def total(self) -> float:
        return self.per_unit(self.client + self.server + self.database)


def postmaster_pid(url: str) -> int:
    """The PostgreSQL server listening on the URL's port (tests/servers.py starts it with
    `-p PORT` on its command line)."""
    flag = f"-p\0{urlsplit(url).port}\0".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if flag in command and b"postgres" in command.split(b"\0", 1)[0]:
            return int(proc.name)
    raise SystemExit(f"no PostgreSQL server found for {url}")


def database_cpu_seconds(postmaster: int) -> float:
    """CPU time of the postmaster and of every backend it has started, ended or not (an ended
    one's is in the postmaster's children's times, once it has waited for it)."""
    stat = Path(f"/proc/{postmaster}/stat").read_text()
    # After the command's closing parenthesis: cutime and cstime are fields 16 and 17.
    fields = stat[stat.rindex(")") + 2 :].split()
    ended = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return cpu_seconds(postmaster) + ended


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class PostgresCounters:
    """PostgreSQL's CPU and write transactions so far."""

    def __init__(self, url: str, stats: asyncpg.Connection) -> None:
        self._postmaster = postmaster_pid(url)
        self._stats = stats

    def cpu_seconds(self) -> float:
        return database_cpu_seconds(self._postmaster)

    async def writes(self) -> int:
        # Counted by transaction ids (a transaction that only reads takes none, this one and
        # the sampler's included), not by pg_stat_database: an idle backend reports its last
        # counts only with its next statement.
        return int(await self._stats.fetchval(TRANSACTION_IDS))

    async def in_flight(self, seconds: float, samples: list[int]) -> None:
        """Sample, for `seconds`, how many statements other connections are running."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            samples.append(await self._stats.fetchval(IN_FLIGHT))
            await asyncio.sleep(SAMPLE_EVERY)


class EmbeddedCounters:
    """SQLite works inside its caller: nothing of its own to count."""

    def cpu_seconds(self) -> float:
        return 0.0

    async def writes(self) -> int:
        return 0

    async def in_flight(self, seconds: float, samples: list[int]) -> None:
        return None


@asynccontextmanager
async def counters(svc: Service) -> AsyncIterator[PostgresCounters | EmbeddedCounters]:
    """What `measured` reads of the service's database."""
    if not svc.storage_url.startswith("postgresql"):
        yield EmbeddedCounters()
        return
    stats = await asyncpg.connect(svc.storage_url)
    try:
        yield PostgresCounters(svc.storage_url, stats)
    finally:
        await stats.close()


async def measured(
    costs: Costs,
    svc: Service,
    database: PostgresCounters | EmbeddedCounters,
    rate: Way,
    seconds: float,
    in_flight: bool = False,
) -> None:
    """Run `rate` and add what it did and cost to `costs`; with `in_flight`, sample how many
    statements PostgreSQL runs at once meanwhile (a query every SAMPLE_EVERY, its cost counted
    too)."""
    writes = await database.writes()
    pid = svc.process.pid
    before = (own_cpu_seconds(), cpu_seconds(pid), database.cpu_seconds(), *_waits(pid))
    loop = main_thread_cpu_seconds(pid)
    sampled = database.in_flight(seconds, costs.in_flight) if in_flight else asyncio.sleep(0)
    per_second, _ = await asyncio.gather(rate(seconds), sampled)
    after = (own_cpu_seconds(), cpu_seconds(pid), database.cpu_seconds(), *_waits(pid))
    costs.server_loop += main_thread_cpu_seconds(pid) - loop
    costs.writes += await database.writes() - writes
    costs.units += round(per_second * seconds)
    costs.seconds += seconds
    costs.client += after[0] - before[0]
    costs.server += after[1] - before[1]
    costs.database += after[2] - before[2]
    costs.idle += after[3] - before[3]
    costs.server_waited += after[4] - before[4]


def _waits(pid: int) -> tuple[float, float]:
    """The cores' idle time so far, and the time the process `pid` waited for one."""
    return idle_core_seconds(), run_queue_seconds(pid)


async def trackers(base: str, seconds: float, clients: int, each: int) -> float:
    """Units of `each` GET /v1/tracker.js per second."""
    async with connections(base, clients, {}) as http:

        async def unit(i: int) -> int:
            for _ in range(each):
                status, body = await http[i].request("GET", "/v1/tracker.js")
                assert status == 200, body
            return 1

        return await run_for(seconds, clients, unit)


async def per_batch(events: Awaitable[float]) -> float:
    return await events / BATCH


def http_pairs(svc: Service, key: str, clients: int) -> Way:
    """Start+exit pairs a second through the server, from `clients` clients."""
    return lambda seconds: lifecycles(svc.base, key, seconds, clients, "webinar")


def http_batches(svc: Service, key: str, sessions: list[str], numbers: Numbers) -> Way:
    """Batches of events a second through the server, a client on each of the `sessions`."""
    return lambda seconds: per_batch(http_events(svc.base, key, sessions, numbers, seconds))


async def ways_of(
    args: argparse.Namespace, svc: Service, tenant_id: str, key: str
) -> dict[str, dict[str, Way]]:
    n = args.clients
    sessions = await open_sessions(svc.base, key, EVENT_CLIENTS)
    numbers = Numbers(len(sessions))
    direct = direct_ways(args, svc, tenant_id, sessions, numbers)
    sqlite = args.storage == "sqlite"
    baseline = "sqlite3, 1 thread(s)" if sqlite else "one statement"
    (batches,) = (way for way in direct.events if baseline in way.name)
    (pairs,) = (
        way for way in direct.pairs if ("8 thread" if sqlite else "then UPDATE") in way.name
    )
    grouped = [("direct, grouped", way.rate) for way in direct.pairs if "grouped" in way.name]
    same = "direct, the service's statements"
    same_pairs = [(same, w.rate) for w in direct.pairs if w.service_statements]
    same_batches = [
        (same, lambda seconds, rate=w.rate: per_batch(rate(seconds)))
        for w in direct.events
        if w.service_statements
    ]
    return {
        f"start+exit pairs, {n} clients": {
            "direct": pairs.rate,
            **dict(grouped),
            **dict(same_pairs),
            "HTTP": http_pairs(svc, key, n),
            "floor (2 x GET /v1/tracker.js)": lambda seconds: trackers(svc.base, seconds, n, 2),
        },
        f"batches of {BATCH} events, {len(sessions)} clients": {
            "direct": lambda seconds: per_batch(batches.rate(seconds)),
            **dict(same_batches),
            "HTTP": http_batches(svc, key, sessions, numbers),
            "floor (1 x GET /v1/tracker.js)": lambda seconds: trackers(
                svc.base, seconds, len(sessions), 1
            ),
        },
    }


async def measure(
    args: argparse.Namespace, svc: Service, tenant_id: str, key: str
) -> dict[str, dict[str, Costs]]:
    measures = await ways_of(args, svc, tenant_id, key)
    costs = {unit: {name: Costs() for name in ways} for unit, ways in measures.items()}
    async with counters(svc) as database:
        for unit, ways in measures.items():
            for rate in ways.values():  # unmeasured: warms every way up
                await rate(1)
            await analyze(svc.storage_url)
            for _ in range(args.rounds):
                for name, rate in ways.items():
                    await measured(
                        costs[unit][name], svc, database, rate, args.seconds, in_flight=True
                    )
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--storage", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()

    with service(1, args.storage) as svc:
        tenant_id = svc.unlimited_tenant("costs", idle_timeouts={"kiosk": None})  # as ingest.py
        svc.store_deployed_sessions(tenant_id)
        key = svc.cli("keys", "create", "--tenant", "costs", "--role", "ingest")
        costs = asyncio.run(measure(args, svc, tenant_id, key))

    print(
        f"{args.storage}, one server worker, {args.rounds} x {args.seconds:g} s a figure, in turns;"
        f" {os.cpu_count()} cores shared by client, server and database"
    )
    for unit, measured_costs in costs.items():
        print_costs(unit, args.storage == "postgresql", measured_costs)


def print_costs(unit: str, postgres: bool, costs: dict[str, Costs]) -> None:
    cores = os.cpu_count() or 1
    print(
        f"{unit:36} {'per s':>7}  CPU µs each: {'client':>6} {'server':>6} {'(loop)':>6}"
        f" {'PostgreSQL':>10} {'total':>6}  writes each  in flight"
        "  rate at full cores  cores idle  server waited"
    )
    for name, c in costs.items():
        database = f"{c.per_unit(c.database):>10,.0f}" if postgres else f"{'-':>10}"
        writes = f"{c.writes / c.units:>11.2f}" if postgres else f"{'-':>11}"
        in_flight = f"{statistics.mean(c.in_flight):>9.2f}" if c.in_flight else f"{'-':>9}"
        print(
            f"  {name:34} {c.rate:>7,.0f}  {'':12} {c.per_unit(c.client):>6,.0f}"
            f" {c.per_unit(c.server):>6,.0f} {c.per_unit(c.server_loop):>6,.0f} {database}"
            f" {c.total:>6,.0f}  {writes}  {in_flight}"
            f"  {cores * 1e6 / c.total:>18,.0f}  {c.idle / c.seconds:>10.2f}"
            f"  {c.server_waited / c.seconds:>13.0%}"
        )
    http = costs["HTTP"]
    (floor,) = (c for name, c in costs.items() if name.startswith("floor"))
    for name, direct in costs.items():
        if name.startswith("direct"):
            print(
                f"  HTTP / {name}: {http.rate / direct.rate:.1%} measured,"
                f" {direct.total / http.total:.1%} in CPU (direct total / HTTP total);"
                f" ceiling {direct.total / (direct.total + floor.total):.1%}, were the"
                " service's own steps free (direct / (direct + floor))"
            )


if __name__ == "__main__":
    main()
