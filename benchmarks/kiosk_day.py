"""A seed fleet's kiosk day through a real server, then the three kiosk reports over that day.

    .venv/bin/python benchmarks/kiosk_day.py [--storage postgresql|sqlite|mongodb] [--scale 1.0]
                                             [--clients 16] [--workers 1]

One day of a fleet (the 24 hours before now, so nothing is late) sent through HTTP as kiosks
send it, by --clients concurrent clients: 1,000 devices start 50,000 anonymous kiosk sessions;
each device flushes its sessions' 1,500,000 events in batches of 50, in order; 5,000 sessions
sell (KRW, JPY or VND by the device's country; card, cash or mobile), 2% of them refunded; 2,000
errors arrive in batches of 100 (20 faults, most of them rare, over 3 app versions whose stack
traces differ in line numbers, so the grouping has work); 20,000 performance metrics in batches
of 100 (capture, print, payment and app_start, each with its steps); and the 50,000 exits.
--scale multiplies every count. Each phase prints its time and rate, and every answer is checked
(each batch must store all it was sent: failed == 0), so a silent refusal cannot inflate a rate.
Then each report over the day (errors; performance by app_version and by device_id; sales by
device_id and by day) is asked 7 times: its median and worst latency until the last byte, PASS
under 1 s. Last the server's peak resident memory (its processes, not the database's).

The day arrives in minutes, so kiosk sessions are set never to idle out (settings
`idle_timeouts`): else the reaper would time out every session waiting for its exit, which a
kiosk of a real day sends minutes after its start. With --storage mongodb the database is the
MongoDB test server (SecantusDB, in Python; not a real mongod): its figures show relative cost
only, and it answers the adapter's queries for uncounted events (a partial index on a real
mongod) by scanning every event, so each batch and each exit there costs more as the day grows:
--scale 0.01 takes about 15 minutes, and ten times the data about a hundred times as long.
"""

import argparse
import asyncio
import itertools
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
from harness import STORAGES, http_client, peak_rss_while, service

DEVICES = 1_000
SESSIONS = 50_000
EVENTS = 1_500_000
EVENT_BATCH = 50
SALES = 5_000
REFUND_EVERY = 50  # sales
ERRORS = 2_000
METRICS = 20_000
TELEMETRY_BATCH = 100
RUNS = 7
TARGET_MS = 1_000.0

VERSIONS = (("1.4.2", 0.2), ("1.5.0", 0.3), ("1.5.1", 0.5))
# A device's country decides its currency and what a sale costs there.
PRICES = {
    "KRW": (5_000, 8_000, 10_000, 15_000, 20_000),
    "JPY": (500, 800, 1_000, 1_500),
    "VND": (50_000, 80_000, 120_000),
}
CURRENCY_SHARES = (0.5, 0.3, 0.2)
EXIT_STATUSES = ("completed", "abandoned", "cancelled")
SCREENS = ("attract", "frame", "camera", "preview", "payment", "print")
FAULTS = [  # type, code, severity, module, function
    ("PrinterError", "PAPER_JAM", "error", "printer", "feed"),
    ("PrinterError", "RIBBON_OUT", "warning", "printer", "check_ribbon"),
    ("PrinterError", "OFFLINE", "error", "printer", "connect"),
    ("CameraError", "TIMEOUT", "error", "camera", "capture"),
    ("CameraError", "FOCUS_FAILED", "warning", "camera", "autofocus"),
    ("CameraError", "DISCONNECTED", "fatal", "camera", "open"),
    ("PaymentError", "DECLINED", "warning", "payment", "authorize"),
    ("PaymentError", "TERMINAL_BUSY", "error", "payment", "send"),
    ("PaymentError", "TIMEOUT", "error", "payment", "wait_result"),
    ("NetworkError", "DNS", "warning", "net", "resolve"),
    ("NetworkError", "UPLOAD_FAILED", "error", "upload", "put"),
    ("RenderError", "OOM", "fatal", "render", "compose"),
    ("RenderError", "FONT_MISSING", "error", "render", "draw_text"),
    ("StorageError", "DISK_FULL", "fatal", "storage", "save"),
    ("StorageError", "CORRUPT", "error", "storage", "load"),
    ("UIError", "FREEZE", "error", "ui", "frame"),
    ("UIError", "TOUCH_LOST", "warning", "ui", "touch"),
    ("StartupError", "CONFIG", "fatal", "boot", "load_config"),
    ("SyncError", "CLOCK_SKEW", "warning", "sync", "ntp"),
    ("CashError", "HOPPER_EMPTY", "error", "cash", "dispense"),
]
# type: share of the metrics, typical milliseconds, its steps
MEASURED = {
    "capture": (0.4, 800.0, ("focus", "shutter", "process")),
    "print": (0.25, 9_000.0, ("spool", "print", "cut")),
    "payment": (0.25, 4_000.0, ("terminal", "authorize")),
    "app_start": (0.1, 3_000.0, ("load", "init")),
}
REPORTS = [
    ("errors", "/v1/reports/errors", {}),
    ("performance by app_version", "/v1/reports/performance", {"group_by": "app_version"}),
    ("performance by device_id", "/v1/reports/performance", {"group_by": "device_id"}),
    ("sales by device_id", "/v1/reports/sales", {"group_by": "device_id"}),
    ("sales by day", "/v1/reports/sales", {"group_by": "day"}),
]

T = TypeVar("T")


def stamp(at: datetime) -> str:
    # "Z" rather than "+00:00": a "+" in a query string would read as a space.
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Visit:
    """One kiosk session of the day."""

    id: str
    device: str
    version: str
    currency: str
    started_at: datetime
    ended_at: datetime
    events: int
    exit_status: str

    def during(self, rng: random.Random) -> datetime:
        return self.started_at + (self.ended_at - self.started_at) * rng.random()


@dataclass
class Day:
    """Everything the fleet sends, drawn once from a seeded generator; events are drawn as
    they are sent (1.5 M bodies at once would weigh gigabytes in the client)."""

    start: datetime
    end: datetime
    visits: list[Visit]
    sales: list[dict[str, Any]]
    refunds: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    metrics: list[dict[str, Any]]

    @classmethod
    def drawn(cls, scale: float) -> "Day":
        rng = random.Random(12)
        end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        start = end - timedelta(days=1)
        devices = scaled(DEVICES, scale)
        versions = rng.choices([v for v, _ in VERSIONS], [w for _, w in VERSIONS], k=devices)
        currencies = rng.choices(list(PRICES), CURRENCY_SHARES, k=devices)
        sessions = scaled(SESSIONS, scale)
        per_session, extra = divmod(scaled(EVENTS, scale), sessions)
        events = [per_session + (n < extra) for n in range(sessions)]
        # Some sessions longer, some shorter, the total as asked: pairs trade events.
        for n in range(0, sessions - 1, 2):
            moved = rng.randrange(per_session // 2 + 1)
            events[n] += moved
            events[n + 1] -= moved
        visits = []
        for n in range(sessions):
            device = n % devices
            length = timedelta(seconds=rng.uniform(90, 900))
            started = start + (end - start - length) * rng.random()
            visits.append(
                Visit(
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    f"kiosk-{device:04d}",
                    versions[device],
                    currencies[device],
                    started,
                    started + length,
                    events[n],
                    rng.choices(EXIT_STATUSES, (0.85, 0.1, 0.05))[0],
                )
            )
        sold = rng.sample(visits, min(sessions, scaled(SALES, scale)))
        sales = [a_sale(rng, n, visit) for n, visit in enumerate(sold)]
        refunds = [a_refund(sale) for sale in sales[::REFUND_EVERY]]
        errors = [an_error(rng, n, rng.choice(visits)) for n in range(scaled(ERRORS, scale))]
        metrics = [a_metric(rng, n, rng.choice(visits)) for n in range(scaled(METRICS, scale))]
        return cls(start, end, visits, sales, refunds, errors, metrics)

    def __str__(self) -> str:
        return (
            f"{len({v.device for v in self.visits}):,} devices, {len(self.visits):,} sessions,"
            f" {sum(v.events for v in self.visits):,} events, {len(self.sales):,} sales"
            f" + {len(self.refunds):,} refunds, {len(self.errors):,} errors,"
            f" {len(self.metrics):,} metrics"
        )

    def event_batches(self, visits: Sequence[Visit]) -> Iterator[list[dict[str, Any]]]:
        """A device's events, its sessions in order, in batches as its buffer flushes them."""
        events = (
            {
                "session_id": visit.id,
                "sequence_no": n,
                "type": "tap" if n % 3 else "screen_enter",
                "label": SCREENS[n % len(SCREENS)],
                "at": stamp(
                    visit.started_at + (visit.ended_at - visit.started_at) * n / (visit.events + 1)
                ),
            }
            for visit in visits
            for n in range(1, visit.events + 1)
        )
        while batch := list(itertools.islice(events, EVENT_BATCH)):
            yield batch


def scaled(count: int, scale: float) -> int:
    return max(1, round(count * scale))


def a_sale(rng: random.Random, n: int, visit: Visit) -> dict[str, Any]:
    gross = rng.choice(PRICES[visit.currency])
    discount = gross // 10 if rng.random() < 0.2 else 0
    return {
        "id": f"sale-{n}",
        "session_id": visit.id,
        "device_id": visit.device,
        "occurred_at": stamp(visit.ended_at - timedelta(seconds=20)),
        "currency": visit.currency,
        "amounts": {
            "gross": str(gross),
            "discount": str(discount),
            "tax": "0",
            "net": str(gross - discount),
        },
        "payment_method": rng.choices(("card", "cash", "mobile"), (0.6, 0.15, 0.25))[0],
        "status": "completed",
        "items": [{"sku": "photo-4x6", "quantity": 1, "unit_price": str(gross)}],
    }


def a_refund(sale: dict[str, Any]) -> dict[str, Any]:
    net = sale["amounts"]["net"]
    return {
        **sale,
        "id": f"refund-{sale['id']}",
        "status": "refunded",
        "refund_of": sale["id"],
        "amounts": {"gross": net, "discount": "0", "tax": "0", "net": net},
        "items": [],
    }


def an_error(rng: random.Random, n: int, visit: Visit) -> dict[str, Any]:
    # A few faults make most of the errors, as in a real fleet.
    kind, code, severity, module, function = rng.choices(
        FAULTS, [1 / (rank + 1) for rank in range(len(FAULTS))]
    )[0]
    line = 100 + FAULTS.index((kind, code, severity, module, function)) * 7
    line += [v for v, _ in VERSIONS].index(visit.version) * 13  # builds move the code
    at = visit.during(rng)
    error: dict[str, Any] = {
        "id": f"error-{n}",
        "at": stamp(at),
        "device_id": visit.device,
        "session_id": visit.id,
        "app_version": visit.version,
        "build": f"{visit.version}+{line}",
        "severity": severity,
        "type": kind,
        "code": code,
        "message": f"{code.lower().replace('_', ' ')} after {rng.randrange(1, 5_000)} ms",
        "stack_trace": (
            f'File "/opt/kiosk/{visit.version}/{module}.py", line {line}, in {function}\n'
            f'File "/opt/kiosk/{visit.version}/main.py", line {line // 2}, in run\n'
            f"{kind}: {code} at 0x{rng.getrandbits(32):08x}"
        ),
        "breadcrumbs": [
            {"at": stamp(at - timedelta(seconds=s)), "type": "screen_enter", "label": screen}
            for s, screen in zip((30, 20, 10), SCREENS[1:4], strict=True)
        ],
        "device_state": {
            "free_disk_mb": rng.randrange(100, 20_000),
            "temperature_c": rng.randrange(30, 70),
        },
    }
    if kind in ("PaymentError", "PrinterError", "CashError"):
        loss = str(rng.choice(PRICES[visit.currency]))
        error["impact"] = {
            "session_interrupted": severity != "warning",
            "sale_lost": severity != "warning",
            "estimated_loss": {"amount": loss, "currency": visit.currency},
            "user_retried": rng.random() < 0.5,
            "recovered": severity == "warning",
        }
    return error


def a_metric(rng: random.Random, n: int, visit: Visit) -> dict[str, Any]:
    kind = rng.choices(list(MEASURED), [share for share, _, _ in MEASURED.values()])[0]
    _, typical, steps = MEASURED[kind]
    # The newest build's capture is the slow one the report should show.
    slower = 1.4 if kind == "capture" and visit.version == "1.5.1" else 1.0
    duration = round(typical * slower * rng.lognormvariate(0, 0.35), 1)
    shares = [rng.random() + 0.2 for _ in steps]
    success = rng.random() < 0.97
    return {
        "id": f"metric-{n}",
        "device_id": visit.device,
        "session_id": None if kind == "app_start" else visit.id,
        "app_version": visit.version,
        "type": kind,
        "started_at": stamp(visit.during(rng)),
        "duration_ms": duration,
        "success": success,
        "error_code": None if success else f"{kind.upper()}_FAILED",
        "breakdown": {
            step: round(duration * share / sum(shares), 1)
            for step, share in zip(steps, shares, strict=True)
        },
    }


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def drive(clients: int, jobs: Iterable[T], send: Callable[[T], Awaitable[int]]) -> int:
    """Send every job, `clients` at a time; the units sent."""
    queue = iter(jobs)  # shared: each client takes the next job when it is free

    async def client() -> int:
        return sum([await send(job) for job in queue])

    return sum(await asyncio.gather(*(client() for _ in range(clients))))


async def posted(http: aiohttp.ClientSession, path: str, body: Any, status: int) -> Any:
    async with http.post(path, json=body) as r:
        assert r.status == status, f"{path}: {r.status} {await r.text()}"
        return await r.json()


async def batch(http: aiohttp.ClientSession, path: str, key: str, items: Sequence[Any]) -> int:
    """A batch, every item of which must be stored (none refused, none taken for a replay)."""
    got = await posted(http, path, {key: list(items)}, 200)
    assert (got["inserted"], got["failed"]) == (len(items), 0), f"{path}: {got}"
    return len(items)


async def ingest(day: Day, http: aiohttp.ClientSession, clients: int) -> float:
    """Send the day, phase by phase, printing each; the seconds it all took."""
    started = time.perf_counter()

    async def phase(name: str, unit: str, sending: Awaitable[int]) -> None:
        began = time.perf_counter()
        done = await sending
        seconds = time.perf_counter() - began
        print(
            f"  {name:<28} {done:>10,} {unit:<8} {seconds:8.1f} s {done / seconds:>9,.0f}/s",
            flush=True,
        )

    async def start(visit: Visit) -> int:
        body = {
            "id": visit.id,
            "kind": "kiosk",
            "resource_id": visit.device,
            "client_key": visit.device,
            "started_at": stamp(visit.started_at),
            "attributes": {"app_version": visit.version},
        }
        await posted(http, "/v1/sessions", body, 201)
        return 1

    async def flush(visits: list[Visit]) -> int:
        sent = 0
        for events in day.event_batches(visits):
            sent += await batch(http, "/v1/events/batch", "events", events)
        return sent

    async def sell(sale: dict[str, Any]) -> int:
        await posted(http, "/v1/sales", sale, 201)
        return 1

    async def leave(visit: Visit) -> int:
        body = {"at": stamp(visit.ended_at), "status": visit.exit_status}
        await posted(http, f"/v1/sessions/{visit.id}/exit", body, 200)
        return 1

    by_device: dict[str, list[Visit]] = {}
    for visit in day.visits:
        by_device.setdefault(visit.device, []).append(visit)
    for visits in by_device.values():
        visits.sort(key=lambda v: v.started_at)

    def batches(path: str, key: str) -> Callable[[Sequence[Any]], Awaitable[int]]:
        return lambda items: batch(http, path, key, items)

    await phase("sessions started", "sessions", drive(clients, day.visits, start))
    await phase(
        f"events, batches of {EVENT_BATCH}", "events", drive(clients, by_device.values(), flush)
    )
    await phase("sales", "sales", drive(clients, day.sales, sell))
    # After their sales: a refund must name a sale already stored.
    await phase("refunds", "refunds", drive(clients, day.refunds, sell))
    errors = chunks(day.errors, TELEMETRY_BATCH)
    await phase(
        f"errors, batches of {TELEMETRY_BATCH}",
        "errors",
        drive(clients, errors, batches("/v1/errors/batch", "errors")),
    )
    metrics = chunks(day.metrics, TELEMETRY_BATCH)
    await phase(
        f"metrics, batches of {TELEMETRY_BATCH}",
        "metrics",
        drive(clients, metrics, batches("/v1/performance/batch", "metrics")),
    )
    await phase("exits", "exits", drive(clients, day.visits, leave))
    return time.perf_counter() - started


async def report(
    http: aiohttp.ClientSession, path: str, params: dict[str, str]
) -> tuple[list[float], list[dict[str, Any]]]:
    """Milliseconds of each run until the last byte has arrived, and the last answer's items."""
    timings = []
    for _ in range(RUNS):
        began = time.perf_counter()
        async with http.get(path, params=params) as got:
            body = await got.json()
        timings.append((time.perf_counter() - began) * 1000)
        assert got.status == 200, f"{path}: {got.status} {body}"
    return timings, body["items"]


async def kiosk_day(
    base: str, ingest_key: str, admin_key: str, day: Day, clients: int
) -> dict[str, float]:
    async with http_client(base, admin_key, 1) as admin:
        async with admin.put("/v1/settings", json={"idle_timeouts": {"kiosk": None}}) as r:
            assert r.status == 200, await r.text()
        async with http_client(base, ingest_key, clients) as http:
            seconds = await ingest(day, http, clients)
        print(f"  {'ingest, wall time':<28} {seconds:29.1f} s", flush=True)
        window = {"from": stamp(day.start), "to": stamp(day.end)}
        failed = 0
        for name, path, params in REPORTS:
            timings, items = await report(admin, path, {**window, **params})
            median = statistics.median(timings)
            failed += median >= TARGET_MS
            print(
                f"  {name:<28} median {median:6.0f} ms, worst {max(timings):6.0f} ms"
                f" of {RUNS} ({len(items):,} rows)  {'PASS' if median < TARGET_MS else 'FAIL'}",
                flush=True,
            )
            # The reports saw the whole day.
            if path.endswith("errors"):
                assert sum(i["count"] for i in items) == len(day.errors), items[:3]
            if path.endswith("performance"):
                assert sum(i["count"] for i in items) == len(day.metrics), items[:3]
    return {"ingest_seconds": seconds, "reports_failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--storage", choices=STORAGES, default="postgresql")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    day = Day.drawn(args.scale)
    database = {
        "postgresql": "PostgreSQL 15",
        "sqlite": "SQLite",
        "mongodb": "the MongoDB test server (SecantusDB, not a real mongod)",
    }[args.storage]
    print(f"kiosk day, scale {args.scale:g}, on {database}:")
    print(f"  {day}")
    print(
        f"  {os.cpu_count()} cores shared by client, server and database;"
        f" {args.clients} clients, {args.workers} server worker(s)",
        flush=True,
    )
    with service(args.workers, args.storage) as svc:
        svc.unlimited_tenant("fleet")
        ingest_key = svc.cli("keys", "create", "--tenant", "fleet", "--role", "ingest")
        admin_key = svc.cli("keys", "create", "--tenant", "fleet", "--role", "admin")
        figures = asyncio.run(
            peak_rss_while(
                svc.process.pid, kiosk_day(svc.base, ingest_key, admin_key, day, args.clients)
            )
        )
    print(f"  server peak RSS: {figures['peak_rss_mb']:.0f} MB")
    if figures["reports_failed"]:
        raise SystemExit(f"{figures['reports_failed']:.0f} report(s) over the 1 s target")


if __name__ == "__main__":
    main()
