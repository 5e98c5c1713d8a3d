"""A rollup over a day of 1,000,000 events, and the rollup's peak memory as the events grow.

    .venv/bin/python benchmarks/rollup.py [--events 1000000 100000] [--per-session 50]

For each size: a fresh PostgreSQL database gets one day of sessions (100 rooms, each session with
`--per-session` events spread over it, usage, and a camera track) and a snapshot a minute, loaded
straight into the tables (COPY); then `sessionmeter rollup --since <that day>` runs as an operator
would run it, and we print its seconds and its peak resident memory. The database aggregates each
hour, so memory must not grow with the number of events.
"""

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from harness import ROOT, SESSION_COLUMNS, cli, database

ROOMS = 100
DAY = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


async def load(dsn: str, events: int, per_session: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        tenant_id = str(await conn.fetchval("SELECT id FROM tenants WHERE name = 'bench'"))
        random.seed(11)
        sessions, meters, tracks, rows = [], [], [], []
        for n in range(events // per_session):
            sid = str(uuid.uuid4())
            started = DAY + timedelta(seconds=random.randrange(0, 22 * 3600))
            length = random.randrange(600, 2 * 3600)
            ended = started + timedelta(seconds=length)
            room = f"room-{n % ROOMS}"
            sessions.append(
                (
                    *(tenant_id, sid, "livekit", room, f"user-{n}", "completed"),
                    *(started, ended, ended, "{}", per_session, per_session, "not_charged"),
                )
            )
            meters.append((tenant_id, sid, "video.seconds", length * 10**9, False))
            tracks.append((tenant_id, sid, f"TR_{n}", "video.seconds", started, ended, True))
            for seq in range(1, per_session + 1):
                at = started + timedelta(seconds=length * seq // (per_session + 1))
                rows.append((tenant_id, sid, seq, "tap", at, None, "green", None, None))
        await conn.copy_records_to_table("sessions", records=sessions, columns=SESSION_COLUMNS)
        await conn.copy_records_to_table(
            "session_meters",
            records=meters,
            columns=["tenant_id", "session_id", "meter", "quantity_nanos", "is_decimal"],
        )
        await conn.copy_records_to_table(
            "track_intervals",
            records=tracks,
            columns=[
                "tenant_id",
                "session_id",
                "track_sid",
                "meter",
                "published_at",
                "unpublished_at",
                "counted",
            ],
        )
        await conn.copy_records_to_table(
            "events",
            records=rows,
            columns=[
                "tenant_id",
                "session_id",
                "sequence_no",
                "type",
                "at",
                "category",
                "label",
                "data",
                "meters",
            ],
        )
        minutes = [DAY + timedelta(minutes=m) for m in range(24 * 60)]
        await conn.copy_records_to_table(
            "snapshots",
            records=[
                (tenant_id, "lk-1", at, 30.0, 40.0, 2048.0, m * 10**8, 40, 3)
                for m, at in enumerate(minutes)
            ],
            columns=[
                "tenant_id",
                "source",
                "at",
                "cpu_percent",
                "memory_percent",
                "memory_mb",
                "traffic_bytes_total",
                "concurrent_users",
                "active_rooms",
            ],
        )
        # As autovacuum leaves a live database (see watch_time_report.py).
        await conn.execute("CHECKPOINT")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


# `sessionmeter rollup`, reporting its own peak memory (VmHWM). Not getrusage: the database
# server's processes are children of this script too, and Linux carries ru_maxrss over an exec,
# so a child would report this script's memory of the loaded rows.
MEASURED_ROLLUP = """
import sys
from entrypoints.cli.main import cli
try:
    cli(["rollup", "--since", sys.argv[1]])
finally:
    with open("/proc/self/status") as status:
        peak_kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print(peak_kb, file=sys.stderr)
"""


def roll_up(env: dict[str, str]) -> tuple[float, float, str]:
    """Seconds and peak RSS (MB) of `sessionmeter rollup`, and what it printed."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", MEASURED_ROLLUP, DAY.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    peak_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
    return seconds, peak_mb, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--per-session", type=int, default=50)
    args = parser.parse_args()

    print(f"rollup of one day (PostgreSQL 15, {ROOMS} rooms, {args.per_session} events a session):")
    for events in sorted(args.events):
        with database("postgresql") as url:
            env = {**os.environ, "SESSIONMETER_STORAGE_URL": url}
            cli(env, "db", "upgrade")
            cli(env, "tenants", "create", "bench")
            loading = time.perf_counter()
            asyncio.run(load(url, events, args.per_session))
            loaded = time.perf_counter() - loading
            seconds, peak_mb, said = roll_up(env)
        print(
            f"  {events:>9,} events: {seconds:.1f} s, peak RSS {peak_mb:.0f} MB "
            f"(loaded in {loaded:.0f} s; {said})"
        )


if __name__ == "__main__":
    main()
