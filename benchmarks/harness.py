"""What every benchmark needs: a throwaway database (a PostgreSQL server, a SQLite file, or the
MongoDB test server), a real `sessionmeter serve` on it, the operator CLI, timed load loops, and
the server's memory."""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import MongoServer, PostgresServer, free_port  # noqa: E402

SESSIONMETER = Path(sys.executable).parent / "sessionmeter"

# The columns a benchmark COPYs a closed session's row into.
SESSION_COLUMNS = [
    "tenant_id",
    "id",
    "kind",
    "resource_id",
    "subject_id",
    "status",
    "started_at",
    "last_seen_at",
    "ended_at",
    "attributes",
    "event_count",
    "max_sequence_no",
    "charge_state",
]


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(SESSIONMETER), *args], env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()[-1]


def family(pid: int) -> list[int]:
    """A process and its children (a server's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if not children.exists():
        return [pid]
    return [pid, *(int(p) for p in children.read_text().split())]


def workers_of(pid: int) -> list[int]:
    """The processes of a server that serve requests: the workers uvicorn spawned, or the server
    itself when it has none. (Its other child is multiprocessing's resource tracker.)"""
    spawned = []
    for p in family(pid)[1:]:
        try:
            if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes():
                spawned.append(p)
        except FileNotFoundError:
            pass
    return spawned or [pid]


def process_rss_mb(pid: int) -> float:
    """Resident memory of one process, in MB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    return sum(process_rss_mb(p) for p in family(pid))


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and its live children have used so far."""
    ticks = 0
    for p in family(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except FileNotFoundError:
            continue
        # After the command's closing parenthesis: state is field 3, utime 14, stime 15.
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


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


def run_threads(seconds: float, threads: int, one: Callable[[int], int]) -> float:
    """`run_for` for blocking drivers (sqlite3): `one` in a loop in `threads` threads."""
    deadline = time.perf_counter() + seconds
    done = [0] * threads

    def worker(i: int) -> None:
        while time.perf_counter() < deadline:
            done[i] += one(i)

    running = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return sum(done) / (time.perf_counter() - started)


def now() -> str:
    return datetime.now(UTC).isoformat()


def http_client(base: str, key: str, clients: int) -> aiohttp.ClientSession:
    # aiohttp rather than httpx: at 32 concurrent requests httpx's own overhead, on the cores
    # the server needs too, would be what this measures.
    connector = aiohttp.TCPConnector(limit=clients)
    return aiohttp.ClientSession(base, headers={"X-API-Key": key}, connector=connector)


async def lifecycles(base: str, key: str, seconds: float, clients: int, kind: str) -> float:
    """Start+exit pairs per second, each client a subject of its own."""
    async with http_client(base, key, clients) as http:

        async def pair(i: int) -> int:
            body = {"kind": kind, "resource_id": "r1", "subject_id": f"u{i}"}
            async with http.post("/v1/sessions", json=body) as started:
                assert started.status == 201, await started.text()
                session_id = (await started.json())["id"]
            async with http.post(f"/v1/sessions/{session_id}/exit", json={}) as ended:
                assert ended.status == 200, await ended.text()
            return 1

        return await run_for(seconds, clients, pair)


def peak_rss_while(
    pid: int, work: Awaitable[dict[str, float]]
) -> Coroutine[Any, Any, dict[str, float]]:
    """Run `work`, sampling the RSS of `pid` and its children; adds peak_rss_mb (their sum) and
    peak_worker_rss_mb (the largest of its workers)."""

    async def sampled() -> dict[str, float]:
        peak = peak_worker = 0.0

        async def sample() -> None:
            nonlocal peak, peak_worker
            while True:
                peak = max(peak, rss_mb(pid))
                peak_worker = max(peak_worker, *(process_rss_mb(p) for p in workers_of(pid)))
                await asyncio.sleep(0.2)

        sampler = asyncio.create_task(sample())
        try:
            figures = await work
        finally:
            sampler.cancel()
        return {**figures, "peak_rss_mb": peak, "peak_worker_rss_mb": peak_worker}

    return sampled()


def rss_line(figures: dict[str, float], workers: int) -> str:
    """The server's peak memory as a benchmark prints it: per worker, then all its processes."""
    return (
        f"server peak RSS, {workers} worker(s): {figures['peak_worker_rss_mb']:.0f} MB per worker"
        f" (the largest; target < 250 MB), {figures['peak_rss_mb']:.0f} MB over all its processes"
    )


def add_worker_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--compare-workers",
        action="store_true",
        help="the HTTP figures with 1 and then 2 server workers (a fresh service each)",
    )


def worker_counts(args: argparse.Namespace) -> list[int]:
    return [1, 2] if args.compare_workers else [args.workers]


@dataclass
class Service:
    storage_url: str
    base: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]

    def cli(self, *args: str) -> str:
        return cli(self.env, *args)

    def unlimited_tenant(self, name: str) -> str:
        """Create a tenant whose keys have no rate limit (a benchmark measures the service, not
        its limiter); its id."""
        created = self.cli("tenants", "create", name)
        admin = self.cli("keys", "create", "--tenant", name, "--role", "admin")
        unlimited = {"rate_limit_per_second": None}
        httpx.put(
            f"{self.base}/v1/settings", json=unlimited, headers={"X-API-Key": admin}
        ).raise_for_status()
        return created.rsplit("(id ", 1)[1].rstrip(")")


STORAGES = ("postgresql", "sqlite", "mongodb")


@contextmanager
def database(storage: str) -> Iterator[str]:
    """The URL of a throwaway database of the family, gone afterwards."""
    if storage == "mongodb":
        with MongoServer() as mongodb:
            yield mongodb.database_url("bench")
    elif storage == "sqlite":
        with tempfile.TemporaryDirectory(prefix="sessionmeter-sqlite-") as directory:
            yield f"sqlite:///{directory}/bench.db"
    else:
        with PostgresServer() as postgres:
            yield postgres.url


@contextmanager
def service(workers: int = 1, storage: str = "postgresql") -> Iterator[Service]:
    """A database and `sessionmeter serve` on it, healthy, and both gone afterwards."""
    with database(storage) as url:
        cli({**os.environ, "SESSIONMETER_STORAGE_URL": url}, "db", "upgrade")
        with server(url, workers) as svc:
            yield svc


@contextmanager
def server(
    url: str,
    workers: int = 1,
    log_level: str | None = None,
    log_format: str | None = None,
    log_file: Path | None = None,
) -> Iterator[Service]:
    """`sessionmeter serve` on the (upgraded) database at `url`, healthy, and gone afterwards.
    Its log lines go to `log_file` if given, else to this process's standard error."""
    env = {**os.environ, "SESSIONMETER_STORAGE_URL": url}
    port = free_port()
    # Quiet unless asked: SESSIONMETER_LOG_LEVEL=info measures a line per request.
    level = log_level or os.environ.get("SESSIONMETER_LOG_LEVEL", "warning")
    command = [str(SESSIONMETER), "serve", "--port", str(port), "--workers", str(workers)]
    command += ["--log-level", level, *(["--log-format", log_format] if log_format else [])]
    with ExitStack() as files:  # the server keeps a copy of the log file's descriptor
        log = files.enter_context(open(log_file, "ab")) if log_file else None
        process = subprocess.Popen(command, env=env, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        # Generous: on a busy machine uvicorn replaces a worker that takes over 5 s to import the
        # app, so several workers can take a minute to come up.
        deadline = time.monotonic() + 180
        wait_until_healthy(base, process, deadline)
        if workers > 1:
            wait_for_workers(process.pid, workers, deadline)
        yield Service(url, base, process, env)
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_until_healthy(base: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited ({process.returncode})")
        try:
            if httpx.get(f"{base}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become healthy")


def wait_for_workers(pid: int, workers: int, deadline: float) -> None:
    """/health answers as soon as one worker is up; a figure of several workers needs them all.
    Up: all spawned, the same ones for a second, and idle (one still starting burns CPU importing
    the app)."""
    while time.monotonic() < deadline:
        before, cpu = workers_of(pid), cpu_seconds(pid)
        time.sleep(1)
        if len(before) == workers and workers_of(pid) == before and cpu_seconds(pid) - cpu < 0.1:
            return
    raise SystemExit(f"the server's {workers} workers did not all come up")
