"""Issue 13's reports over a quarter of stores' sessions, rolled up, through a real server.

    .venv/bin/python benchmarks/reports.py [--sessions 1000000] [--days 90] [--stores 200]

A tenant in Asia/Seoul with five dimensions (store_id, group_id, country, app_version, channel)
gets --sessions sessions over the --days local days before today, loaded straight into
PostgreSQL (COPY) with the values the adapters write: 95 % anonymous kiosk sessions on two
kiosks a store, each with a few `screen_enter` events (attract, then frame, camera, payment and
print, fewer at each step) and closed completed (printed), abandoned or timed out; 5 % practice
sessions of students on 20 exams, the kind the default plan's free trial limits, a few students
then subscribed to a paid plan (through HTTP) and some refused starts a day. Then
`sessionmeter rollup --since` the first day, as an operator runs it, and each report through
HTTP, 2 warm-ups and then 20 requests, each until its last byte:

  daily summary of the last day per store  GET /v1/reports/daily          target < 100 ms
  30 days of usage by week per store       GET /v1/reports/usage          target < 100 ms
  funnel of the last 30 days               GET /v1/reports/funnel/{name}  target < 100 ms
  trial report of the last 30 days         GET /v1/reports/trials         target < 100 ms
  watch time of one exam (of 20)           GET /v1/reports/watch-time     target < 500 ms

Prints the seeding and rollup times, and each report's median and p95 (PASS on the median);
next to the daily, usage and funnel reports, the rows they ask the database for, fetched with
asyncpg alone (how much of the time is the database). The server's background jobs are off, so
nothing but the requests runs during the timings. --runs 3 shortens a trial at a larger scale.

What reads what: the usage report reads the day rollups' sums per store (rollup_groups: a row
per store, kind and day); the daily summary reads the day's sums per store and, as the tenant
has exactly one funnel, that funnel's tallies of the day per store (funnel_day_groups, made by
the same `rollup` run) for its conversion; the funnel report reads the funnel's 30 whole-day
rollups (each day's tally: stage counts and times in stage counted to 3 significant digits);
the trial report reads the window's raw practice sessions (by kind) and the subscribers'
histories, the watch-time report the resource's raw sessions.
"""

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
from harness import SESSION_COLUMNS, SESSIONMETER, Service, http_client, service
from kiosk_day import stamp

ZONE = ZoneInfo("Asia/Seoul")
DIMENSIONS = ["store_id", "group_id", "country", "app_version", "channel"]
KIOSKS_PER_STORE = 2
GROUPS = 20
COUNTRIES = ("KR", "JP", "VN")
VERSIONS = ("1.4.2", "1.5.0", "1.5.1")
CHANNELS = ("walk_in", "event", "member")
TRIAL_SHARE = 0.05  # of the sessions: practice sessions of students
EXAMS = 20
SESSIONS_PER_STUDENT = 5
FUNNEL = "photo"
# The kiosk's screens in order, and the share of sessions that go on from the one before.
SCREENS = (("attract", 1.0), ("frame", 0.8), ("camera", 0.85), ("payment", 0.7), ("print", 0.95))
CHUNK = 50_000  # sessions generated and copied at a time
WARM_UPS = 2
RUNS = 20  # timed requests of each report (--runs)
DIRECT_RUNS = 5
CONTEXT = {"ip": "127.0.0.1", "user_agent": "kiosk/1.0"}  # as the start request adds them
EVENT_COLUMNS = [
    *("tenant_id", "session_id", "sequence_no", "type", "at"),
    *("category", "label", "data", "meters"),
]


def local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZONE).astimezone(UTC)


def kiosk_sessions(
    rng: random.Random, tenant_id: str, count: int, stores: int, start: datetime, end: datetime
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Session rows (SESSION_COLUMNS + client_key, summary) and their event rows."""
    span = (end - start).total_seconds() - 3600
    sessions, events = [], []
    for _ in range(count):
        store, n = rng.randrange(stores), rng.randrange(KIOSKS_PER_STORE)
        kiosk = f"kiosk-S{store:04d}-{n + 1}"
        attributes = {
            **CONTEXT,
            "store_id": f"S{store:04d}",
            "group_id": f"G{store % GROUPS:02d}",
            "country": COUNTRIES[store % len(COUNTRIES)],
            "app_version": VERSIONS[(store * KIOSKS_PER_STORE + n) % len(VERSIONS)],
            "channel": rng.choice(CHANNELS),
        }
        started = start + timedelta(seconds=rng.uniform(0, span))
        ended = started + timedelta(seconds=rng.uniform(60, 900))
        reached = 0
        for _screen, going_on in SCREENS:
            if rng.random() >= going_on:
                break
            reached += 1
        status = (
            "completed"
            if reached == len(SCREENS)
            else rng.choice(("abandoned",) * 2 + ("timed_out",))
        )
        sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        for seq in range(1, reached + 1):
            at = started + (ended - started) * seq / (reached + 1)
            label = SCREENS[seq - 1][0]
            events.append((tenant_id, sid, seq, "screen_enter", at, None, label, "null", "{}"))
        sessions.append(
            (
                *(tenant_id, sid, "kiosk", kiosk, None, status, started, ended, ended),
                *(json.dumps(attributes), reached, reached, "not_charged", kiosk, "null"),
            )
        )
    return sessions, events


def practice_sessions(
    rng: random.Random, tenant_id: str, count: int, students: int, start: datetime, end: datetime
) -> list[tuple[Any, ...]]:
    span = (end - start).total_seconds() - 7200
    rows = []
    for _ in range(count):
        started = start + timedelta(seconds=rng.uniform(0, span))
        ended = started + timedelta(seconds=rng.uniform(600, 3600))
        attributes = {**CONTEXT, "country": rng.choice(COUNTRIES), "channel": "web"}
        rows.append(
            (
                *(tenant_id, str(uuid.UUID(int=rng.getrandbits(128), version=4)), "practice"),
                *(f"exam-{rng.randrange(EXAMS):02d}", f"student-{rng.randrange(students):06d}"),
                *("completed", started, ended, ended, json.dumps(attributes), 0, 0),
                *("not_charged", None, "null"),
            )
        )
    return rows


def chunks(total: int) -> Iterator[int]:
    while total > 0:
        yield min(CHUNK, total)
        total -= CHUNK


async def seed(
    dsn: str, tenant_id: str, sessions: int, stores: int, start: datetime, end: datetime
) -> dict[str, int]:
    """Load the sessions and events (COPY, CHUNK sessions at a time) and the refused starts."""
    rng = random.Random(13)
    practice = round(sessions * TRIAL_SHARE)
    students = max(10, practice // SESSIONS_PER_STUDENT)
    columns = [*SESSION_COLUMNS, "client_key", "summary"]
    counts = {"kiosk": 0, "practice": practice, "events": 0, "students": students}
    conn = await asyncpg.connect(dsn)
    try:
        for size in chunks(sessions - practice):
            rows, events = kiosk_sessions(rng, tenant_id, size, stores, start, end)
            await conn.copy_records_to_table("sessions", records=rows, columns=columns)
            await conn.copy_records_to_table("events", records=events, columns=EVENT_COLUMNS)
            counts["kiosk"] += len(rows)
            counts["events"] += len(events)
        for size in chunks(practice):
            rows = practice_sessions(rng, tenant_id, size, students, start, end)
            await conn.copy_records_to_table("sessions", records=rows, columns=columns)
        days = (end - start).days
        refused = [
            (tenant_id, (start + timedelta(days=d, hours=12)).astimezone(ZONE).date(), subject)
            for d in range(days)
            for subject in rng.sample(range(students), min(students, 5))
        ]
        await conn.copy_records_to_table(
            "refused_starts",
            records=[
                (t, day, f"student-{s:06d}", "practice", "trial_exhausted", rng.randrange(1, 4))
                for t, day, s in refused
            ],
            columns=["tenant_id", "day", "subject_id", "kind", "reason", "count"],
        )
    finally:
        await conn.close()
    return counts


async def vacuum(dsn: str) -> None:
    # As autovacuum leaves a live database; CHECKPOINT first, see watch_time_report.py.
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def put(http: aiohttp.ClientSession, path: str, body: Any) -> None:
    async with http.put(path, json=body) as r:
        assert r.status in (200, 201), f"{path}: {r.status} {await r.text()}"


async def configure(base: str, admin: str, days: int) -> None:
    """The zone and dimensions (before the rollup, which rolls up by them), retention long
    enough for the whole window, the funnel, and the plans of the free trial."""
    async with http_client(base, admin, 1) as http:
        settings = {
            "time_zone": ZONE.key,
            "dimensions": DIMENSIONS,
            # The default 90 days would have retention clip the window's first hours.
            "event_retention_days": days + 2,
            "hourly_rollup_retention_days": days + 2,
        }
        await put(http, "/v1/settings", settings)
        stages = [
            {"name": screen, "match": {"type": "screen_enter", "label": screen}}
            for screen, _ in SCREENS[1:]
        ]
        await put(http, f"/v1/funnels/{FUNNEL}", {"kind": "kiosk", "stages": stages})
        trial = {"sessions_per_resource": 3, "session_kinds": ["practice"]}
        await put(http, "/v1/plans/trial", {"default": True, "unlimited": False, "limits": trial})
        await put(http, "/v1/plans/pro", {"default": False, "unlimited": True, "limits": {}})


async def subscribe(base: str, admin: str, students: int, until: datetime) -> int:
    """Some students take the paid plan now, after their trial sessions: conversions."""
    subscribed = list(range(0, students, 20))
    body = {"plan_id": "pro", "ends_at": stamp(until)}
    async with http_client(base, admin, 1) as http:
        for n in subscribed:
            await put(http, f"/v1/accounts/student-{n:06d}/subscription", body)
    return len(subscribed)


def timed_rollup(svc: Service, tenant: str, since: datetime) -> tuple[float, str]:
    """Seconds of `sessionmeter rollup --since`, and what it said."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(SESSIONMETER), "rollup", "--tenant", tenant, "--since", stamp(since)],
        env=svc.env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the rollup failed after {seconds:.1f} s:\n{done.stdout}{done.stderr}")
    return seconds, done.stdout.strip().splitlines()[-1]


async def timings(
    http: aiohttp.ClientSession, path: str, params: dict[str, str], runs: int
) -> tuple[list[float], Any]:
    """Milliseconds of each timed request until its last byte, and the last answer."""
    measured = []
    for n in range(WARM_UPS + runs):
        began = time.perf_counter()
        async with http.get(path, params=params) as got:
            body = await got.read()
        if n >= WARM_UPS:
            measured.append((time.perf_counter() - began) * 1000)
        assert got.status == 200, f"{path}: {got.status} {body[:500]!r}"
    return measured, json.loads(body)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]


def rows_of(answer: Any) -> str:
    if isinstance(answer, dict) and "items" in answer:
        return f"{len(answer['items']):,} rows"
    if isinstance(answer, dict) and "stages" in answer:
        return f"{answer['sessions']:,} sessions"
    if isinstance(answer, dict) and "trial_subjects" in answer:
        return f"{answer['trial_subjects']:,} subjects"
    return ""


# The rows the daily, usage and funnel reports add up (adapters/sqlalchemy/rollup_sums.py,
# funnel_days.py), fetched whole with asyncpg: how much of a report is the database.
ROLLUP_ROWS = """
SELECT * FROM rollup_groups
WHERE tenant_id = $1 AND period = 'day' AND grouping = 'attributes.store_id'
  AND bucket_start >= $2 AND bucket_start < $3
"""
FUNNEL_ROWS = """
SELECT tally FROM funnel_days
WHERE tenant_id = $1 AND funnel = 'photo' AND day_start >= $2 AND day_start < $3
"""


@dataclass
class Report:
    name: str
    path: str
    params: dict[str, str]
    target_ms: float
    direct: tuple[str, datetime, datetime] | None = None  # its rows' query, from, to
    ms: list[float] = field(default_factory=list)
    answer: str = ""
    direct_ms: float | None = None
    direct_rows: int = 0


def asked(start: datetime, end: datetime) -> list[Report]:
    month_start = max(start, end - timedelta(days=30))
    month = {"from": stamp(month_start), "to": stamp(end)}
    last_day = (end - timedelta(hours=12)).astimezone(ZONE).date()
    store = "attributes.store_id"
    return [
        Report(
            "daily summary, last day, by store",
            "/v1/reports/daily",
            {"date": last_day.isoformat(), "group_by": store},
            100.0,
            (ROLLUP_ROWS, local_midnight(last_day), end),
        ),
        Report(
            "usage, 30 days by week, by store",
            "/v1/reports/usage",
            {"bucket": "week", **month, "group_by": store},
            100.0,
            (ROLLUP_ROWS, month_start, end),
        ),
        Report(
            "funnel, 30 days",
            f"/v1/reports/funnel/{FUNNEL}",
            month,
            100.0,
            (FUNNEL_ROWS, month_start, end),
        ),
        Report("trials, 30 days", "/v1/reports/trials", month, 100.0),
        Report("watch time, one exam", "/v1/reports/watch-time", {"resource_id": "exam-00"}, 500.0),
    ]


async def measure(
    base: str, admin: str, dsn: str, tenant_id: str, report: Report, runs: int
) -> None:
    async with http_client(base, admin, 1) as http:
        report.ms, answer = await timings(http, report.path, report.params, runs)
    report.answer = rows_of(answer)
    if report.direct is None:
        return
    sql, start, end = report.direct
    conn = await asyncpg.connect(dsn)
    try:
        direct = []
        for _ in range(DIRECT_RUNS):
            began = time.perf_counter()
            rows = await conn.fetch(sql, tenant_id, start, end)
            direct.append((time.perf_counter() - began) * 1000)
    finally:
        await conn.close()
    report.direct_ms, report.direct_rows = statistics.median(direct), len(rows)


def print_table(figures: list[tuple[str, str, str]], reports: list[Report], runs: int) -> int:
    """The tables; how many reports missed their target."""
    print()
    print(f"| {'step':<44} | {'time':>9} | |")
    print(f"|{'-' * 46}|{'-' * 11}|---|")
    for name, took, note in figures:
        print(f"| {name:<44} | {took:>9} | {note} |")
    print()
    print(
        f"| {'report, HTTP: ' + str(runs) + ' runs after ' + str(WARM_UPS) + ' warm-ups':<36}"
        " | median ms | p95 ms | target | | answer | its rows, asyncpg alone |"
    )
    print(f"|{'-' * 38}|-----------|--------|--------|------|--------|---|")
    failed = 0
    for r in reports:
        median = statistics.median(r.ms)
        verdict = "PASS" if median < r.target_ms else "FAIL"
        failed += verdict == "FAIL"
        direct = "" if r.direct_ms is None else f"{r.direct_rows:,} rows in {r.direct_ms:.0f} ms"
        print(
            f"| {r.name:<36} | {median:9.0f} | {p95(r.ms):6.0f} | < {r.target_ms:4.0f} | {verdict} "
            f"| {r.answer} | {direct} |"
        )
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--stores", type=int, default=200)
    parser.add_argument("--runs", type=int, default=RUNS, help="timed requests of each report")
    args = parser.parse_args()

    today = datetime.now(ZONE).date()
    end = local_midnight(today)
    start = local_midnight(today - timedelta(days=args.days))
    print(
        f"reports over {args.sessions:,} sessions, {args.days} days ({start.astimezone(ZONE).date()}"
        f" to {today - timedelta(days=1)}, {ZONE.key}), {args.stores} stores, 5 dimensions;"
        f" PostgreSQL 15 and one server worker on {os.cpu_count()} cores",
        flush=True,
    )
    # Nothing in the background: the rollup is the one timed here, the reports alone on the server.
    for job in ("REAPER", "RETENTION", "ROLLUP", "LIVEKIT_RECONCILE"):
        os.environ[f"SESSIONMETER_{job}_INTERVAL_SECONDS"] = "0"
    figures: list[tuple[str, str, str]] = []
    reports = asked(start, end)
    with service() as svc:
        tenant_id = svc.unlimited_tenant("stores")
        admin = svc.cli("keys", "create", "--tenant", "stores", "--role", "admin")
        asyncio.run(configure(svc.base, admin, args.days))

        began = time.perf_counter()
        counts = asyncio.run(
            seed(svc.storage_url, tenant_id, args.sessions, args.stores, start, end)
        )
        seeded = time.perf_counter() - began
        sessions = counts["kiosk"] + counts["practice"]
        figures.append(
            (
                "seed: sessions and events (generate + COPY)",
                f"{seeded:.1f} s",
                f"{sessions:,} sessions, {counts['events']:,} events"
                f" ({sessions / seeded:,.0f} sessions/s)",
            )
        )
        print(f"  seeded in {seeded:.1f} s", flush=True)
        began = time.perf_counter()
        asyncio.run(vacuum(svc.storage_url))
        figures.append(
            ("seed: CHECKPOINT, VACUUM ANALYZE", f"{time.perf_counter() - began:.1f} s", "")
        )
        began = time.perf_counter()
        converted = asyncio.run(
            subscribe(svc.base, admin, counts["students"], end + timedelta(days=365))
        )
        figures.append(
            (
                "seed: paid subscriptions, HTTP",
                f"{time.perf_counter() - began:.1f} s",
                f"{converted:,} of {counts['students']:,} students",
            )
        )

        seconds, said = timed_rollup(svc, "stores", start)
        figures.append(("sessionmeter rollup --since the first day", f"{seconds:.1f} s", said))
        print(f"  rolled up in {seconds:.1f} s", flush=True)

        for report in reports:
            asyncio.run(measure(svc.base, admin, svc.storage_url, tenant_id, report, args.runs))
            print(f"  {report.name}: median {statistics.median(report.ms):.0f} ms", flush=True)

    failed = print_table(figures, reports, args.runs)
    if failed:
        raise SystemExit(f"{failed} report(s) over target")


if __name__ == "__main__":
    main()
