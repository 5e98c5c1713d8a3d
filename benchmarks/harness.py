"""What every benchmark needs: a throwaway database (a PostgreSQL server, a SQLite file, or the
MongoDB test server), a real `sessionmeter serve` on it, the operator CLI, timed load loops, the
minimal HTTP client that drives them, and the server's memory."""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import aiohttp
import asyncpg
import httpx
import msgspec

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
    return sum(process_cpu_seconds(p) for p in family(pid))


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) one process has used so far (0 once it is gone)."""
    return _stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def main_thread_cpu_seconds(pid: int) -> float:
    """CPU time the main threads of a process and its live children have used so far: a
    server's event loops, without the threads that run SQLite's statements."""
    return sum(_stat_cpu_seconds(Path(f"/proc/{p}/task/{p}/stat")) for p in family(pid))


def _stat_cpu_seconds(path: Path) -> float:
    try:
        stat = path.read_text()
    except FileNotFoundError:
        return 0.0
    # After the command's closing parenthesis: state is field 3, utime 14, stime 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_core_seconds() -> float:
    """Time the machine's cores have spent with nothing to run so far, added over the cores
    (idle and waiting for the disk, /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")


def run_queue_seconds(pid: int) -> float:
    """Time a process and its live children have spent ready to run but waiting for a core
    (the scheduler's second figure in /proc/PID/task/TID/schedstat, for each thread)."""
    waited = 0
    for process in family(pid):
        for task in Path(f"/proc/{process}/task").glob("*"):
            try:
                waited += int((task / "schedstat").read_text().split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue  # gone meanwhile
    return waited / 1e9


@contextmanager
def workers_cores(pid: int) -> Iterator[list[float]]:
    """Each of the server's workers' share of a core while the block runs (filled in as it
    ends): a worker near 0 beside a busy one means the connections were not spread over them."""
    workers = workers_of(pid)
    before = [process_cpu_seconds(p) for p in workers]
    start = time.perf_counter()
    shares: list[float] = []
    yield shares
    elapsed = time.perf_counter() - start
    shares += [(process_cpu_seconds(p) - b) / elapsed for p, b in zip(workers, before, strict=True)]


def cores_text(shares: list[float]) -> str:
    return " / ".join(f"{share:.2f}" for share in shares)


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


def mirrored(names: Sequence[str], rounds: int) -> list[tuple[int, str]]:
    """(round, name) for each turn, each round in the order of the one before reversed (a, b;
    b, a; ...): a steady drift of this VM's speed favours none of them."""
    return [
        (r, name)
        for r in range(rounds)
        for name in (names if r % 2 == 0 else list(reversed(names)))
    ]


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


async def analyze(url: str) -> None:
    """The planner's statistics on a PostgreSQL database, as a running deployment has them
    (autovacuum analyses a table about a minute after it fills). A fresh database has none, and
    PostgreSQL then reads a session by its key through an index on its tenant alone: a scan of
    the tenant's sessions, dearer with each one stored (an exit's two statements took 3.6 ms of
    the database's time after 2,000 pairs instead of 1 ms). A figure taken then measures that,
    and the direct writes, measured later on tables autovacuum had analysed by then, do not.
    Nothing to do on the other stores."""
    if url.startswith("postgresql"):
        connection = await asyncpg.connect(url)
        try:
            await connection.execute("ANALYZE")
        finally:
            await connection.close()


# The sessions a benchmark's tenant already holds before it is timed (harness.store_sessions).
DEPLOYED_SESSIONS = 20_000


def deployed_sessions(
    tenant_id: str, count: int = DEPLOYED_SESSIONS, ago: timedelta = timedelta(days=7)
) -> list[dict[str, Any]]:
    """Completed sessions of a week before (or `ago`), one a second: what a deployment's
    tables hold when a figure is taken. On an empty table PostgreSQL plans a read by key as a scan of the table, and each
    connection keeps that plan for its prepared statement while the table grows (until the next
    ANALYZE, which autovacuum runs about a minute later): a figure timed from empty measures the
    first minute of a fresh install (an exit's UPDATE took 1.6 ms of the database instead of 0.3,
    its read 0.8 instead of 0.05), and the direct writes, timed later, do not."""
    began = datetime.now(UTC) - ago
    return [
        {
            "tenant_id": tenant_id,
            "id": str(uuid.uuid4()),
            "kind": "webinar",
            "resource_id": f"w{i % 100}",
            "subject_id": f"viewer-{i}",
            "status": "completed",
            "started_at": began + timedelta(seconds=i),
            "last_seen_at": began + timedelta(seconds=i + 600),
            "ended_at": began + timedelta(seconds=i + 600),
            "attributes": {},
            "event_count": 0,
            "max_sequence_no": 0,
            "charge_state": "none",
        }
        for i in range(count)
    ]


async def store_sessions(url: str, rows: list[dict[str, Any]], analyze: bool = True) -> None:
    """Session rows (SESSION_COLUMNS) written straight into a PostgreSQL or SQLite database in
    the service's own formats (COPY on PostgreSQL; the service's table, executemany, on
    SQLite), then analysed if asked."""
    if url.startswith("sqlite"):
        await asyncio.to_thread(_store_sqlite_sessions, url, rows, analyze)
        return
    conn = await asyncpg.connect(url)
    try:
        records = [
            tuple(json.dumps(r[c]) if c == "attributes" else r[c] for c in SESSION_COLUMNS)
            for r in rows
        ]
        await conn.copy_records_to_table("sessions", records=records, columns=SESSION_COLUMNS)
        if analyze:
            await conn.execute("ANALYZE sessions")
    finally:
        await conn.close()


def _store_sqlite_sessions(url: str, rows: list[dict[str, Any]], analyze: bool) -> None:
    # The service's own table: its column types write what the service reads.
    from sqlalchemy import create_engine

    from adapters.sqlalchemy.tables import sessions

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sessions.insert(), rows)
            if analyze:
                conn.exec_driver_sql("ANALYZE sessions")
    finally:
        engine.dispose()


def now() -> str:
    return datetime.now(UTC).isoformat()


def http_client(base: str, key: str, clients: int) -> aiohttp.ClientSession:
    """A full HTTP client, for the benchmarks that time the server's work on few requests; a
    throughput figure drives its load through `Connection`s."""
    connector = aiohttp.TCPConnector(limit=clients)
    return aiohttp.ClientSession(base, headers={"X-API-Key": key}, connector=connector)


def header_lines(headers: dict[str, str]) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode()


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: the throughput benchmarks' load generator, doing the
    least a client can (as wrk does). aiohttp's own CPU came to ~0.8 ms a request (1.6 ms a
    start+exit pair): on 2 cores shared by client, server and database, up to a third of the
    machine, so the client, not the server, was what a figure measured.

    A request is one bytes formatting and one write; a response is read as its status code, its
    headers up to the blank line and a Content-Length body, which the service's answers always
    carry (no chunked ones). uvicorn writes a response's head and body apart, so one may come in
    pieces; several may come in one."""

    def __init__(self, host: str, headers: dict[str, str]) -> None:
        self._headers = header_lines({"Host": host, **headers})  # sent with every request
        self._transport: asyncio.Transport | None = None
        self._received = bytearray()
        self._responses: deque[asyncio.Future[tuple[int, bytes]]] = deque()

    @classmethod
    async def open(cls, base: str, headers: dict[str, str]) -> "Connection":
        """A connection to the server at `base` (http://host:port), sending `headers` with
        every request."""
        host = base.removeprefix("http://")
        name, port = host.rsplit(":", 1)
        _, connection = await asyncio.get_running_loop().create_connection(
            lambda: cls(host, headers), name, int(port)
        )
        return connection

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: bytes = b""
    ) -> tuple[int, bytes]:
        """The status and body of the response; `headers` as `header_lines` makes them."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionError("the connection is closed")
        transport.write(
            b"%b %b HTTP/1.1\r\n%b%bContent-Length: %d\r\n\r\n%b"
            % (method.encode(), path.encode(), self._headers, headers, len(body), body)
        )
        response: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._responses.append(response)
        return await response

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._received += data
        while self._responses:
            blank = self._received.find(b"\r\n\r\n")
            if blank < 0:
                return
            head = bytes(self._received[: blank + 2]).lower()  # each header line ends in \r\n
            at = head.find(b"\r\ncontent-length:")
            if at < 0:  # asyncio closes the connection: the request raises this
                raise ValueError(f"a response without Content-Length: {head!r}")
            start = blank + 4
            end = start + int(head[at + 17 : head.index(b"\r\n", at + 2)])
            if len(self._received) < end:
                return
            body = bytes(self._received[start:end])
            del self._received[:end]
            response = self._responses.popleft()
            if not response.cancelled():
                response.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        for response in self._responses:
            if not response.cancelled():
                response.set_exception(exc or ConnectionError("the server closed the connection"))
        self._responses.clear()


@asynccontextmanager
async def connections(
    base: str, count: int, headers: dict[str, str]
) -> AsyncIterator[list[Connection]]:
    """`count` connections to the server at `base`, closed afterwards."""
    opened: list[Connection] = []
    try:
        for _ in range(count):
            opened.append(await Connection.open(base, headers))
        yield opened
    finally:
        for connection in opened:
            connection.close()


def api_headers(key: str) -> dict[str, str]:
    """The headers of a JSON request to the API with `key`."""
    return {"Content-Type": "application/json", "X-API-Key": key}


async def lifecycles(base: str, key: str, seconds: float, clients: int, kind: str) -> float:
    """Start+exit pairs per second, each client a subject of its own."""
    starts = [
        msgspec.json.encode({"kind": kind, "resource_id": "r1", "subject_id": f"u{i}"})
        for i in range(clients)
    ]
    async with connections(base, clients, api_headers(key)) as http:

        async def pair(i: int) -> int:
            status, body = await http[i].request("POST", "/v1/sessions", starts[i])
            assert status == 201, body
            session_id = msgspec.json.decode(body)["id"]
            status, body = await http[i].request("POST", f"/v1/sessions/{session_id}/exit", b"{}")
            assert status == 200, body
            return 1

        return await run_for(seconds, clients, pair)


def peak_rss_while(
    pid: int, work: Awaitable[dict[str, Any]]
) -> Coroutine[Any, Any, dict[str, Any]]:
    """Run `work`, sampling the RSS of `pid` and its children; adds peak_rss_mb (their sum) and
    peak_worker_rss_mb (the largest of its workers)."""

    async def sampled() -> dict[str, Any]:
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

    def unlimited_tenant(self, name: str, **settings: Any) -> str:
        """Create a tenant whose keys have no rate limit (a benchmark measures the service, not
        its limiter), with these other `settings`; its id."""
        tenant_id = self.create_tenant(name)
        admin = self.cli("keys", "create", "--tenant", name, "--role", "admin")
        unlimited = {"rate_limit_per_second": None, **settings}
        httpx.put(
            f"{self.base}/v1/settings", json=unlimited, headers={"X-API-Key": admin}
        ).raise_for_status()
        return tenant_id

    def create_tenant(self, name: str) -> str:
        """A new tenant's id."""
        return self.cli("tenants", "create", name).rsplit("(id ", 1)[1].rstrip(")")

    def store_deployed_sessions(self, tenant_id: str) -> None:
        """Give the tenant a deployment's sessions (deployed_sessions) before anything is timed;
        not on the MongoDB test server, which plans nothing ahead."""
        if not self.storage_url.startswith("mongodb"):
            asyncio.run(store_sessions(self.storage_url, deployed_sessions(tenant_id)))


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
    extra_env: dict[str, str] | None = None,
) -> Iterator[Service]:
    """`sessionmeter serve` on the (upgraded) database at `url`, healthy, and gone afterwards.
    Its log lines go to `log_file` if given, else to this process's standard error; `extra_env`
    is added to this process's environment."""
    env = {**os.environ, **(extra_env or {}), "SESSIONMETER_STORAGE_URL": url}
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
