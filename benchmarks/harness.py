"""What every benchmark needs: a throwaway database server (PostgreSQL, or the MongoDB test
server), a real `sessionmeter serve` on it, the operator CLI, a timed load loop, and the server's
memory."""

import asyncio
import os
import subprocess
import sys
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


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    for p in family(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


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
    """Run `work`, sampling the RSS of `pid` (and its children); adds peak_rss_mb."""

    async def sampled() -> dict[str, float]:
        peak = 0.0

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss_mb(pid))
                await asyncio.sleep(0.2)

        sampler = asyncio.create_task(sample())
        try:
            figures = await work
        finally:
            sampler.cancel()
        return {**figures, "peak_rss_mb": peak}

    return sampled()


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


STORAGES = ("postgresql", "mongodb")


@contextmanager
def database(storage: str) -> Iterator[str]:
    """The URL of a throwaway database of the family, gone afterwards."""
    if storage == "mongodb":
        with MongoServer() as mongodb:
            yield mongodb.database_url("bench")
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
        for _ in range(100):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("the server did not become healthy")
        yield Service(url, base, process, env)
    finally:
        process.terminate()
        process.wait(timeout=30)
