"""Where a start+exit pair's CPU goes, written directly and through HTTP.

    .venv/bin/python benchmarks/pair_costs.py [--seconds 10] [--clients 32] [--rounds 2]
                                              [--storage postgresql|sqlite]

The pairs figure of ingest.py is a ratio of two rates on 2 shared cores; this one says what
each pair costs each party, so that the ratio can be read as arithmetic. In turns, --rounds
times each, for --seconds:
  direct   ingest.py's baseline: asyncpg, INSERT then UPDATE, each its own transaction
           (SQLite: the sqlite3 module in 8 threads on the server's file, the same two writes);
  HTTP     POST /v1/sessions then POST /v1/sessions/{id}/exit (harness.lifecycles), one worker;
  floor    GET /v1/tracker.js, two a pair: a request through the same server, framework and
           client with no authentication, no body and no storage: what a pair costs before
           the service does anything.
For each: pairs per second; CPU microseconds per pair (user + system) of the client (this
process), the server (its processes) and PostgreSQL (the postmaster and its backends; SQLite
works inside the client or the server), and their total; PostgreSQL transactions per pair
(pg_stat_database); and the rate that total would give if the machine's cores did nothing else.
When the cores are full that is close to the measured rate, and the HTTP ratio is then the
direct total over the HTTP total. Last, the ceiling of that ratio: the direct total over itself
plus the floor's, were the service's own steps free.
"""

import argparse
import asyncio
import os
import resource
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from harness import Service, connections, cpu_seconds, lifecycles, run_for, service
from ingest import SQLITE_THREADS, pg_pairs, sqlite_pairs

Way = Callable[[float], Awaitable[float]]  # seconds -> pairs per second


@dataclass
class Costs:
    pairs: int = 0
    seconds: float = 0.0
    client: float = 0.0  # CPU seconds
    server: float = 0.0
    database: float = 0.0
    transactions: int = 0

    def per_pair(self, cpu_seconds: float) -> float:
        return cpu_seconds / self.pairs * 1e6

    @property
    def total(self) -> float:
        return self.per_pair(self.client + self.server + self.database)


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
    """PostgreSQL's CPU and committed transactions so far."""

    def __init__(self, url: str, stats: asyncpg.Connection) -> None:
        self._postmaster = postmaster_pid(url)
        self._stats = stats

    def cpu_seconds(self) -> float:
        return database_cpu_seconds(self._postmaster)

    async def transactions(self) -> int:
        # The statistics collector reports a backend's counts once it is idle, within a second.
        await asyncio.sleep(1)
        await self._stats.execute("SELECT pg_stat_clear_snapshot()")
        committed: int = await self._stats.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return committed - 2  # this connection's own two statements


class EmbeddedCounters:
    """SQLite works inside its caller: nothing of its own to count."""

    def cpu_seconds(self) -> float:
        return 0.0

    async def transactions(self) -> int:
        return 0


async def measured(
    costs: Costs,
    svc: Service,
    database: PostgresCounters | EmbeddedCounters,
    rate: Way,
    seconds: float,
) -> None:
    """Run `rate` and add what it did and cost to `costs`."""
    committed = await database.transactions()
    before = (own_cpu_seconds(), cpu_seconds(svc.process.pid), database.cpu_seconds())
    per_second = await rate(seconds)
    after = (own_cpu_seconds(), cpu_seconds(svc.process.pid), database.cpu_seconds())
    costs.transactions += await database.transactions() - committed
    costs.pairs += round(per_second * seconds)
    costs.seconds += seconds
    costs.client += after[0] - before[0]
    costs.server += after[1] - before[1]
    costs.database += after[2] - before[2]


async def tracker_pairs(base: str, seconds: float, clients: int) -> float:
    """Pairs of GET /v1/tracker.js per second."""
    async with connections(base, clients, {}) as http:

        async def pair(i: int) -> int:
            for _ in range(2):
                status, body = await http[i].request("GET", "/v1/tracker.js")
                assert status == 200, body
            return 1

        return await run_for(seconds, clients, pair)


def direct_pairs(args: argparse.Namespace, url: str, tenant_id: str) -> Way:
    if args.storage == "sqlite":
        path = url.removeprefix("sqlite:///")
        return lambda seconds: asyncio.to_thread(
            sqlite_pairs, path, tenant_id, seconds, SQLITE_THREADS
        )
    return lambda seconds: pg_pairs(url, tenant_id, seconds, args.clients)


async def measure(
    args: argparse.Namespace, svc: Service, tenant_id: str, key: str
) -> dict[str, Costs]:
    n = args.clients
    ways: dict[str, Way] = {
        "direct": direct_pairs(args, svc.storage_url, tenant_id),
        "HTTP, 1 worker": lambda seconds: lifecycles(svc.base, key, seconds, n, "webinar"),
        "floor (2 x GET /v1/tracker.js)": lambda seconds: tracker_pairs(svc.base, seconds, n),
    }
    costs = {name: Costs() for name in ways}
    async with AsyncExitStack() as stack:
        database: PostgresCounters | EmbeddedCounters = EmbeddedCounters()
        if args.storage == "postgresql":
            stats = await asyncpg.connect(svc.storage_url)
            stack.push_async_callback(stats.close)
            database = PostgresCounters(svc.storage_url, stats)
        for rate in ways.values():  # unmeasured: warms every way up
            await rate(1)
        for _ in range(args.rounds):
            for name, rate in ways.items():
                await measured(costs[name], svc, database, rate, args.seconds)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--storage", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()

    with service(1, args.storage) as svc:
        tenant_id = svc.unlimited_tenant("pairs")
        svc.store_deployed_sessions(tenant_id)
        key = svc.cli("keys", "create", "--tenant", "pairs", "--role", "app")
        costs = asyncio.run(measure(args, svc, tenant_id, key))

    print_costs(args, costs)


def print_costs(args: argparse.Namespace, costs: dict[str, Costs]) -> None:
    cores = os.cpu_count() or 1
    postgres = args.storage == "postgresql"
    print(
        f"start+exit pairs on {args.storage}, {args.clients} clients, {args.rounds} x"
        f" {args.seconds:g} s each, in turns; {cores} cores shared by client, server and database"
    )
    print(
        f"{'':31} {'pairs/s':>7}  CPU µs per pair: {'client':>6} {'server':>6}"
        f" {'PostgreSQL':>10} {'total':>6}  transactions/pair  rate at full cores"
    )
    for name, c in costs.items():
        database = f"{c.per_pair(c.database):>10,.0f}" if postgres else f"{'-':>10}"
        transactions = f"{c.transactions / c.pairs:>17.2f}" if postgres else f"{'-':>17}"
        print(
            f"{name:31} {c.pairs / c.seconds:>7,.0f}  {'':16} {c.per_pair(c.client):>6,.0f}"
            f" {c.per_pair(c.server):>6,.0f} {database} {c.total:>6,.0f}  {transactions}"
            f"  {cores * 1e6 / c.total:>18,.0f}"
        )
    direct, http, floor = costs.values()
    print(
        f"HTTP / direct: {http.pairs / http.seconds / (direct.pairs / direct.seconds):.1%}"
        f" measured, {direct.total / http.total:.1%} in CPU per pair (direct total / HTTP total)"
    )
    print(
        f"ceiling: {direct.total / (direct.total + floor.total):.1%}, were the service's every"
        " step free but the floor's and the direct writes' own (direct / (direct + floor))"
    )


if __name__ == "__main__":
    main()
