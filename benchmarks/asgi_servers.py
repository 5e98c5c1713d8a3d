"""Which ASGI server should serve the app: the same load through each, one worker each.

    .venv/bin/python benchmarks/asgi_servers.py [--seconds 5] [--rounds 3] [--granian PATH]
                                                [--pin CPU]

Servers (each with the environment and the settings `sessionmeter serve` gives uvicorn, read
from its own option defaults, at the same log level, access log off):
  serve: uvicorn httptools+uvloop   `sessionmeter serve` itself, what production runs: httptools
                                    with the request-read deadline of
                                    entrypoints/cli/request_deadline.py and the whole responses
                                    of entrypoints/cli/whole_responses.py, uvloop
  uvicorn.run, the same             the same uvicorn.run in a bare process (not the CLI's, which
                                    migrated the storage first and imported all the commands)
  uvicorn.run, plain httptools      plain httptools and uvloop: what serve's protocol changes
  uvicorn.run, h11+asyncio          uvicorn without its speed-ups: what they are worth
  granian uvloop http1              granian's ASGI interface, `--loop uvloop --http 1`
  granian asyncio auto              granian with asyncio's loop and its default HTTP detection
The granian ones run if `granian` is importable here or --granian names its executable (a venv
of its own, with the project installed in it for its metadata, works: PYTHONPATH points it at this
checkout); else the script says how to install it.

Figures, each for --seconds, per server:
  (a) start+exit pairs per second, 32 clients (harness.lifecycles);
  (b) events per second through POST /v1/events/batch, batches of 100, 8 clients (ingest.py);
  (c) GET /health per second, 32 clients: server, framework and one `SELECT 1`;
  (d) GET /v1/tracker.js per second, 32 clients: server and framework, no storage at all;
and the server's CPU seconds (user + system, its processes) per 1,000 requests of each, and its
resident memory after them. All the servers are up at once, on one throwaway PostgreSQL, one
tenant; each figure runs through each server in turn, the order turning, so that a machine whose
load drifts (one shared with other jobs) weighs on all alike. With --rounds 2 or more the
tables show medians, with each rate's lowest and highest. Each figure first runs half a second
unmeasured. Client, server and database share this machine's cores: a server that needs less
CPU leaves more to the other two, and on a machine shared with other jobs the CPU per request
is the steadier figure. granian parses HTTP on a Rust thread beside the Python one: unpinned it may
take more of the cores; --pin puts every server on one core, for the rate per core.
"""

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import (
    ROOT,
    Service,
    api_headers,
    cli,
    connections,
    cpu_seconds,
    database,
    family,
    lifecycles,
    rss_mb,
    run_for,
    server,
    wait_until_healthy,
)
from ingest import BATCH, EVENT_CLIENTS, Numbers, http_events, open_sessions

from entrypoints.cli.request_deadline import TIMEOUT_ENV
from entrypoints.cli.serve import serve
from entrypoints.logs import default_format, logging_config
from tests.servers import free_port

APP = "entrypoints.http.app:app_from_env"
CLIENTS = 32
# What `serve` gives uvicorn unless told otherwise, from its options.
SERVE_DEFAULTS: dict[str | None, Any] = {p.name: p.default for p in serve.params}
KEEP_ALIVE = int(SERVE_DEFAULTS["keep_alive"])
REQUEST_TIMEOUT = float(SERVE_DEFAULTS["request_timeout"])
GRACEFUL_SHUTDOWN = int(SERVE_DEFAULTS["graceful_shutdown"])
# As harness.server: quiet unless asked (SESSIONMETER_LOG_LEVEL=info logs a line per request).
LOG_LEVEL = os.environ.get("SESSIONMETER_LOG_LEVEL", "warning")
# A venv of its own, with the project's locked dependencies and the project itself (the app
# reads its version from the package's metadata); then --granian /tmp/gv/bin/granian.
INSTALL_GRANIAN = (
    "python3 -m venv /tmp/gv && /tmp/gv/bin/pip install -r requirements.lock granian==2.8.7"
    " && /tmp/gv/bin/pip install --no-deps -e . ; then --granian /tmp/gv/bin/granian"
)


@dataclass(frozen=True)
class Candidate:
    name: str
    # The command serving the app on a port, given the logging config file; None: `serve` itself.
    command: Callable[[int, Path], list[str]] | None = None


# uvicorn.run as `serve` calls it (entrypoints/cli/serve.py), in a process of its own that
# imports nothing else; the HTTP protocol and the loop are the arguments.
UVICORN_RUN = """
import json, sys
import uvicorn
http, loop, port, keep_alive, graceful_shutdown, log_level, log_config = sys.argv[1:]
uvicorn.run(
    "entrypoints.http.app:app_from_env", factory=True, host="127.0.0.1", port=int(port),
    workers=1, http=http, loop=loop, timeout_keep_alive=int(keep_alive),
    timeout_graceful_shutdown=int(graceful_shutdown), proxy_headers=False,
    forwarded_allow_ips=None, log_level=log_level, log_config=json.load(open(log_config)),
    access_log=False,
)
"""
PROTOCOL = "entrypoints.cli.serve:ServerProtocol"


def uvicorn_run(http: str, loop: str) -> Callable[[int, Path], list[str]]:
    def command(port: int, log_config: Path) -> list[str]:
        settings = (port, KEEP_ALIVE, GRACEFUL_SHUTDOWN, LOG_LEVEL, log_config)
        return [sys.executable, "-c", UVICORN_RUN, http, loop, *map(str, settings)]

    return command


def granian_cli(granian: list[str], loop: str, http: str) -> Callable[[int, Path], list[str]]:
    """granian's ASGI interface, with its nearest equivalents of `serve`'s settings: a header
    read timeout (not the body's; it closes without a 408, and it also ends an idle keep-alive
    connection: at most 60 s) and a kill timeout for workers that do not stop (killed, the
    app's shutdown does not run). It has no option for proxy headers (an app wrapper does)."""

    def command(port: int, log_config: Path) -> list[str]:
        header_ms = int(REQUEST_TIMEOUT * 1000)
        return [
            *granian,
            *("--interface", "asgi", "--factory", APP),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            *("--loop", loop, "--http", http),
            *("--http1-header-read-timeout", str(min(header_ms, 60_000))),
            *("--workers-kill-timeout", str(GRACEFUL_SHUTDOWN)),
            *("--log-level", LOG_LEVEL, "--log-config", str(log_config), "--no-access-log"),
        ]

    return command


def candidates(granian: list[str] | None) -> list[Candidate]:
    chosen = [
        Candidate("serve: uvicorn httptools+uvloop"),
        Candidate("uvicorn.run, the same", uvicorn_run(PROTOCOL, "auto")),
        Candidate("uvicorn.run, plain httptools", uvicorn_run("httptools", "uvloop")),
        Candidate("uvicorn.run, h11+asyncio", uvicorn_run("h11", "asyncio")),
    ]
    if granian:
        chosen += [
            Candidate("granian uvloop http1", granian_cli(granian, "uvloop", "1")),
            Candidate("granian asyncio auto", granian_cli(granian, "asyncio", "auto")),
        ]
    return chosen


def granian_command(given: str | None) -> list[str] | None:
    if given:
        return [given]
    if importlib.util.find_spec("granian"):
        return [sys.executable, "-m", "granian"]
    return None


@contextmanager
def serving(candidate: Candidate, url: str, log_config: Path) -> Iterator[Service]:
    """The candidate serving the app on the database at `url`, healthy, and gone afterwards."""
    if candidate.command is None:
        with server(url) as svc:
            yield svc
        return
    # What `serve` puts in the environment before uvicorn.run (one worker: no metrics directory).
    env = {
        **os.environ,
        "SESSIONMETER_STORAGE_URL": url,
        TIMEOUT_ENV: str(REQUEST_TIMEOUT),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    port = free_port()
    process = subprocess.Popen(candidate.command(port, log_config), env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process, time.monotonic() + 30)
        yield Service(url, base, process, env)
    finally:
        process.terminate()
        process.wait(timeout=30)


async def gets(base: str, key: str, path: str, seconds: float) -> float:
    async with connections(base, CLIENTS, api_headers(key)) as http:

        async def one(i: int) -> int:
            status, body = await http[i].request("GET", path)
            assert status == 200, body
            return 1

        return await run_for(seconds, CLIENTS, one)


@dataclass(frozen=True)
class Figure:
    column: str  # its heading in the tables
    requests_per_unit: float  # HTTP requests per unit of its rate
    run: Callable[[Service, str, float], Awaitable[float]]  # (service, key, seconds) -> rate


async def pairs(svc: Service, key: str, seconds: float) -> float:
    return await lifecycles(svc.base, key, seconds, CLIENTS, "webinar")


async def events(svc: Service, key: str, seconds: float) -> float:
    sessions = await open_sessions(svc.base, key, EVENT_CLIENTS)
    return await http_events(svc.base, key, sessions, Numbers(len(sessions)), seconds)


async def health(svc: Service, key: str, seconds: float) -> float:
    return await gets(svc.base, key, "/health", seconds)


async def tracker(svc: Service, key: str, seconds: float) -> float:
    return await gets(svc.base, key, "/v1/tracker.js", seconds)


FIGURES = [
    Figure("(a) pairs/s", 2, pairs),
    Figure("(b) events/s", 1 / BATCH, events),
    Figure("(c) /health/s", 1, health),
    Figure("(d) tracker/s", 1, tracker),
]
WARM_UP_SECONDS = 0.5  # of each figure, unmeasured: first requests compile queries and caches


@dataclass
class Runs:
    """One server's figures, round after round."""

    name: str
    svc: Service
    rates: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)  # CPU s per 1,000 requests
    rss_mb: float = 0.0

    async def measure(self, figure: Figure, key: str, seconds: float) -> None:
        pid = self.svc.process.pid
        cpu_before, started = cpu_seconds(pid), time.perf_counter()
        rate = await figure.run(self.svc, key, seconds)
        requests = rate * (time.perf_counter() - started) * figure.requests_per_unit
        self.rates.setdefault(figure.column, []).append(rate)
        cpu = (cpu_seconds(pid) - cpu_before) / requests * 1000
        self.cpu.setdefault(figure.column, []).append(cpu)


async def measure(servers: list[Runs], key: str, args: argparse.Namespace) -> None:
    """Each figure through each server in turn, round after round: the machine's load, which
    drifts, falls on all of them alike. The order turns from figure to figure and round to
    round, so no server always comes first or always follows the same one."""
    for runs in servers:
        for figure in FIGURES:
            await figure.run(runs.svc, key, WARM_UP_SECONDS)
    turn = 0
    for n in range(args.rounds):
        for figure in FIGURES:
            order = servers[turn % len(servers) :] + servers[: turn % len(servers)]
            turn += 1
            for runs in order:
                print(f"round {n + 1}, {figure.column}: {runs.name}", file=sys.stderr)
                await runs.measure(figure, key, args.seconds)
    for runs in servers:
        runs.rss_mb = rss_mb(runs.svc.process.pid)


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of the server's processes on `cpus` only (threads it starts later inherit
    it): granian's Rust thread beside the Python one gets more of free cores (or of a busy
    machine's scheduler), which is more CPU for the server, not less CPU per request."""
    for process in family(pid):
        for task in Path(f"/proc/{process}/task").iterdir():
            os.sched_setaffinity(int(task.name), cpus)


def report(results: dict[str, Runs], args: argparse.Namespace) -> None:
    where = f"each server pinned to core {args.pin}" if args.pin is not None else "none pinned"
    print(
        f"\n{os.cpu_count()} cores shared by client, server and PostgreSQL (and by whatever else"
        f" runs on this machine), {where}; one server worker; {args.seconds:g} s per figure;"
        f" {args.rounds} round(s)" + (", medians" if args.rounds > 1 else "")
    )
    print(
        f"(a) start+exit, {CLIENTS} clients; (b) POST /v1/events/batch, {BATCH} events a batch,"
        f" {EVENT_CLIENTS} clients; (c) GET /health, (d) GET /v1/tracker.js, {CLIENTS} clients"
    )
    width = max(len(name) for name in results) + 2
    columns = [figure.column for figure in FIGURES]
    heading = f"{'':<{width}}" + "".join(f"{c:>18}" for c in columns)
    first = next(iter(results.values()))

    print("\nrate (vs the first server" + ("; lowest-highest" if args.rounds > 1 else "") + ")")
    print(heading)
    for name, runs in results.items():
        cells = []
        for c in columns:
            rate = statistics.median(runs.rates[c])
            cells.append(f"{rate:.0f} {rate / statistics.median(first.rates[c]) - 1:+.0%}")
        print(f"{name:<{width}}" + "".join(f"{cell:>18}" for cell in cells))
        if args.rounds > 1:
            spreads = [f"{min(runs.rates[c]):.0f}-{max(runs.rates[c]):.0f}" for c in columns]
            print(f"{'':<{width}}" + "".join(f"{spread:>18}" for spread in spreads))

    print("\nserver CPU seconds per 1,000 requests (user + system, all its processes)")
    print(heading + f"{'RSS after':>12}")
    for name, runs in results.items():
        cpu = "".join(f"{statistics.median(runs.cpu[c]):>18.2f}" for c in columns)
        print(f"{name:<{width}}{cpu}{runs.rss_mb:>9.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--granian", help="granian's executable, if not importable here")
    parser.add_argument(
        "--pin",
        type=int,
        metavar="CPU",
        help="every thread of each server on this one core: the rate per core",
    )
    args = parser.parse_args()

    granian = granian_command(args.granian)
    if granian is None:
        print(f"granian left out: not importable here. To include it: {INSTALL_GRANIAN}")
    chosen = candidates(granian)
    with (
        database("postgresql") as url,
        tempfile.TemporaryDirectory() as scratch,
        ExitStack() as running,
    ):
        cli({**os.environ, "SESSIONMETER_STORAGE_URL": url}, "db", "upgrade")
        log_config = Path(scratch) / "logging.json"
        log_config.write_text(json.dumps(logging_config(default_format(), LOG_LEVEL)))
        # All up at once, on one database: an idle server costs nothing but its memory.
        results = {}
        for candidate in chosen:
            print(f"starting {candidate.name}", file=sys.stderr)
            svc = running.enter_context(serving(candidate, url, log_config))
            if args.pin is not None:
                pin(svc.process.pid, {args.pin})
            results[candidate.name] = Runs(candidate.name, svc)
        first = next(iter(results.values())).svc
        first.unlimited_tenant("bench")
        key = first.cli("keys", "create", "--tenant", "bench", "--role", "ingest")
        asyncio.run(measure(list(results.values()), key, args))
    report(results, args)


if __name__ == "__main__":
    main()
