"""What operating the service costs: /metrics and the JSON request log, under the ingest load.

    .venv/bin/python benchmarks/operating.py [--seconds 10] [--rounds 3] [--workers 1]

Issue 16's target: metrics and logging together cost under 5 % of the ingest benchmark's
events/s. Two real servers on one PostgreSQL take turns under benchmarks/ingest.py's load (b)
(POST /v1/events/batch, batches of 100, 8 clients), each turn --seconds long:
  quiet:    --log-level warning (no request lines), nothing scrapes /metrics;
  observed: --log-format json --log-level info, a JSON line per request appended to a file as in
            production, and /metrics scraped once a second during the load.
Each of --rounds rounds runs both, in turns that mirror each other (quiet, observed; observed,
quiet; ...), so that this shared machine's drift and the growing events table weigh on both
alike. It prints every turn, the median events/s of each and their ratio (target >= 0.95).

Metrics are recorded on every request in both (the product has no switch for them), so their
cost is also timed in process: the request wrapper of entrypoints/http/traffic.py (request id,
Metrics.request, the log line) around an app that answers at once, against that app bare, in
microseconds per request, next to the observed server's CPU time per request of the load
(/proc/<pid>/stat before and after, over the requests sent): the share of the server's CPU spent
on metrics and logs (target < 5 %). Prints PASS or FAIL; FAIL exits with status 1.
"""

import argparse
import asyncio
import logging
import logging.config
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import aiohttp
from harness import Service, cpu_seconds, database, mirrored, server
from ingest import BATCH, EVENT_CLIENTS, Numbers, http_events, open_sessions
from litestar.types import (
    ASGIApp,
    HTTPRequestEvent,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

# harness puts the project on the path
from application.tenants.authenticate import Principal
from domain.tenants import Access, Role, Tenant
from entrypoints.http.metrics import Metrics
from entrypoints.http.traffic import observed
from entrypoints.logs import logging_config

CONFIGURATIONS = ("quiet", "observed")
TARGET_RATIO = 0.95
TARGET_SHARE = 0.05
WARM_UP_SECONDS = 2.0
MICRO_REQUESTS = 20_000
MICRO_REPEATS = 5


@dataclass
class Turn:
    configuration: str
    events_per_second: float
    cpu_us_per_request: float
    scrapes: int


async def scraped(base: str, load: Awaitable[float]) -> tuple[float, int]:
    """Run `load` while GETting /metrics once a second, as Prometheus would; its figure and the
    number of scrapes."""
    scrapes = 0
    async with aiohttp.ClientSession(base) as http:

        async def scrape() -> None:
            nonlocal scrapes
            while True:
                async with http.get("/metrics") as r:
                    assert r.status == 200, await r.text()
                    await r.read()
                scrapes += 1
                await asyncio.sleep(1)

        scraper = asyncio.create_task(scrape())
        try:
            figure = await load
        finally:
            scraper.cancel()
    return figure, scrapes


async def turn(configuration: str, svc: Service, key: str, seconds: float) -> Turn:
    """The events load on one server for `seconds`, with the server's CPU time per request."""
    sessions = await open_sessions(svc.base, key, EVENT_CLIENTS)
    load = http_events(svc.base, key, sessions, Numbers(len(sessions)), seconds)
    cpu, started = cpu_seconds(svc.process.pid), time.perf_counter()
    if configuration == "observed":
        rate, scrapes = await scraped(svc.base, load)
    else:
        rate, scrapes = await load, 0
    cpu, wall = cpu_seconds(svc.process.pid) - cpu, time.perf_counter() - started
    requests = rate / BATCH * wall + scrapes
    return Turn(configuration, rate, cpu / requests * 1e6, scrapes)


async def alternate(
    servers: dict[str, Service], key: str, seconds: float, rounds: int
) -> list[Turn]:
    for configuration, svc in servers.items():  # warm-up, not counted
        await turn(configuration, svc, key, min(WARM_UP_SECONDS, seconds))
    turns = []
    for r, configuration in mirrored(CONFIGURATIONS, rounds):
        done = await turn(configuration, servers[configuration], key, seconds)
        print(
            f"  round {r + 1}  {configuration:<8}  {done.events_per_second:7,.0f} events/s"
            f"  server CPU {done.cpu_us_per_request:6,.0f} us/request"
            + (f"  ({done.scrapes} scrapes)" if done.scrapes else ""),
            flush=True,
        )
        turns.append(done)
    return turns


def medians(turns: list[Turn], configuration: str) -> tuple[float, float]:
    """Median events/s and median server CPU us per request of one configuration's turns."""
    mine = [t for t in turns if t.configuration == configuration]
    return (
        statistics.median(t.events_per_second for t in mine),
        statistics.median(t.cpu_us_per_request for t in mine),
    )


def round_ratios(turns: list[Turn]) -> list[float]:
    """observed / quiet events/s within each round (its two turns ran back to back)."""
    rounds = [
        {t.configuration: t.events_per_second for t in turns[i : i + 2]}
        for i in range(0, len(turns), 2)
    ]
    return [r["observed"] / r["quiet"] for r in rounds]


# --- the wrapper, in process -----------------------------------------------------------------


async def answer(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that answers at once, as a batch's answer would look."""
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"16")],
    }
    body: HTTPResponseBodyEvent = {
        "type": "http.response.body",
        "body": b'{"inserted":100}',
        "more_body": False,
    }
    await send(start)
    await send(body)


async def receive() -> HTTPRequestEvent:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Message) -> None:
    pass


def batch_scope(metrics: Metrics) -> Scope:
    """A POST /v1/events/batch once routed and authenticated, with aiohttp's headers."""
    tenant = Tenant("6b1f7a44-3c8e-4d57-9a8b-0f6c2d9e1a73", "bench", datetime.now(UTC))
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"x-api-key", b"sm_ingest_0123456789abcdef0123456789abcdef"),
        (b"accept", b"*/*"),
        (b"accept-encoding", b"gzip, deflate"),
        (b"user-agent", b"Python/3.11 aiohttp/3.14.5"),
        (b"content-length", b"17000"),
        (b"content-type", b"application/json"),
    ]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/events/batch",
        "path_template": "/v1/events/batch",
        "headers": headers,
        "app": SimpleNamespace(state=SimpleNamespace(metrics=metrics)),
        "state": {"principal": Principal(tenant, Access(Role.INGEST), "k1")},
    }
    return cast(Scope, scope)


def log_lines(level: str, file: Path) -> None:
    """The server's logging configuration (entrypoints/logs.py), JSON, writing to `file` instead
    of standard error."""
    config = logging_config("json", level)
    config["handlers"]["stderr"] = {
        "class": "logging.FileHandler",
        "filename": str(file),
        "formatter": "chosen",
    }
    logging.config.dictConfig(config)


async def us_per_request(app: ASGIApp, scope: Scope) -> float:
    """The best of MICRO_REPEATS runs of MICRO_REQUESTS requests, in us per request."""
    best = float("inf")
    for _ in range(MICRO_REPEATS):
        started = time.perf_counter()
        for _ in range(MICRO_REQUESTS):
            await app(scope, receive, send)
        best = min(best, time.perf_counter() - started)
    return best / MICRO_REQUESTS * 1e6


async def wrapper_cost(log_file: Path) -> dict[str, float]:
    """us per request the wrapper adds to the bare app: with lines at warning (metrics only, the
    quiet server) and with a JSON line per request to a file (the observed server)."""
    scope = batch_scope(Metrics())
    bare = await us_per_request(answer, scope)
    log_lines("warning", log_file)
    metrics_only = await us_per_request(observed(answer), scope)
    log_lines("info", log_file)
    with_lines = await us_per_request(observed(answer), scope)
    logging.config.dictConfig(logging_config("json", "warning"))
    return {"bare": bare, "metrics": metrics_only - bare, "metrics_and_log": with_lines - bare}


# --- the run ---------------------------------------------------------------------------------


def measure(args: argparse.Namespace, logs: Path) -> list[Turn]:
    with database("postgresql") as url:
        quiet = server(url, args.workers, "warning", "json", logs / "quiet.log")
        with quiet as svc:
            svc.unlimited_tenant("bench")
            key = svc.cli("keys", "create", "--tenant", "bench", "--role", "ingest")
            with server(url, args.workers, "info", "json", logs / "observed.log") as watched:
                servers = {"quiet": svc, "observed": watched}
                return asyncio.run(alternate(servers, key, args.seconds, args.rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    print(
        f"postgresql, {os.cpu_count()} cores shared by client, servers and database;"
        f" {args.workers} server worker(s); events/s of batches of {BATCH}, {EVENT_CLIENTS}"
        f" clients; {args.rounds} rounds of {args.seconds:.0f} s per configuration; {date.today()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="sessionmeter-operating-") as directory:
        logs = Path(directory)
        turns = measure(args, logs)
        lines = len((logs / "observed.log").read_bytes().splitlines())
        cost = asyncio.run(wrapper_cost(logs / "micro.log"))

    quiet_rate, quiet_cpu = medians(turns, "quiet")
    observed_rate, observed_cpu = medians(turns, "observed")
    ratio = observed_rate / quiet_rate
    share = cost["metrics_and_log"] / observed_cpu
    print(f"observed server's log: {lines:,} JSON lines (a request each, warm-up included)")
    print(
        f"events/s, median: quiet {quiet_rate:,.0f}  observed {observed_rate:,.0f}"
        f"  ratio {ratio:.3f} (target >= {TARGET_RATIO})"
    )
    within = round_ratios(turns)
    print(
        "ratio within each round: "
        + " ".join(f"{r:.3f}" for r in within)
        + f" (median {statistics.median(within):.3f}; the verdict takes the ratio of the medians)"
    )
    print(
        f"server CPU per request, median: quiet {quiet_cpu:,.0f} us  observed"
        f" {observed_cpu:,.0f} us  (difference {observed_cpu - quiet_cpu:+,.0f} us)"
    )
    print(
        f"request wrapper in process ({MICRO_REQUESTS:,} requests, best of {MICRO_REPEATS}):"
        f" {cost['metrics']:.1f} us a request at level warning (request id, metrics),"
        f" {cost['metrics_and_log']:.1f} us at info (and its JSON line); bare app {cost['bare']:.1f} us"
    )
    print(
        f"share of the observed server's CPU per request: {share:.2%} (target < {TARGET_SHARE:.0%})"
    )
    passed = ratio >= TARGET_RATIO and share < TARGET_SHARE
    print("PASS" if passed else "FAIL")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
