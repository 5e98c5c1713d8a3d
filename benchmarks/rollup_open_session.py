"""What one session kept open for weeks costs every rollup run of its tenant.

    .venv/bin/python benchmarks/rollup_open_session.py [--days 28] [--per-day 200]

A fresh PostgreSQL database gets --days days of closed sessions (--per-day a day, 10 events
each: an `open`, then `answer`s), loaded straight into the tables (COPY), a funnel over them
(open, then answer), and one session started --days days ago that is still active, last seen
now (heartbeats keep it alive). `sessionmeter rollup --since` rolls the
days up once, as an operator would after loading them. Then the runs the server makes every
5 minutes: each resumes where the previous one said, the last sign of life of the active session
seen least recently (until 2026-12-06, the start of the oldest one), and rolls the funnel up
again for every day from the oldest active session's start (a session counts in its start day's
funnel, which is not final until it ends). We time two such runs with the session open, then
close it and time three more. Prints each run's seconds, hours, days and funnel days.
"""

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from harness import SESSION_COLUMNS, cli, database

EVENTS_PER_SESSION = 10


async def load(dsn: str, days: int, per_day: int, now: datetime) -> str:
    """The closed sessions and their events, and the open one; its id."""
    conn = await asyncpg.connect(dsn)
    try:
        tenant_id = str(await conn.fetchval("SELECT id FROM tenants WHERE name = 'bench'"))
        random.seed(7)
        first_day = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0)
        sessions: list[tuple[object, ...]] = []
        events = []
        for n in range(days * per_day):
            sid = str(uuid.uuid4())
            started = first_day + timedelta(days=n // per_day, seconds=random.randrange(86_000))
            ended = min(started + timedelta(seconds=random.randrange(60, 3600)), now)
            sessions.append(
                (
                    *(tenant_id, sid, "practice", f"pdf-{n % 50}", f"user-{n}", "completed"),
                    *(started, ended, ended, "{}", EVENTS_PER_SESSION, EVENTS_PER_SESSION),
                    "not_charged",
                )
            )
            for seq in range(1, EVENTS_PER_SESSION + 1):
                at = started + (ended - started) * seq / (EVENTS_PER_SESSION + 1)
                kind = "open" if seq == 1 else "answer"
                events.append((tenant_id, sid, seq, kind, at, None, None, None, None))
        open_id = str(uuid.uuid4())
        sessions.append(
            (
                *(tenant_id, open_id, "webinar", "webinar-1", "host", "active"),
                *(now - timedelta(days=days), now, None, "{}", 0, 0, "none"),
            )
        )
        await conn.copy_records_to_table("sessions", records=sessions, columns=SESSION_COLUMNS)
        columns = ["tenant_id", "session_id", "sequence_no", "type", "at"]
        columns += ["category", "label", "data", "meters"]
        await conn.copy_records_to_table("events", records=events, columns=columns)
        stages = [
            {"name": name, "match": {"type": kind, "label": None, "category": None}}
            for name, kind in (("opened", "open"), ("answered", "answer"))
        ]
        await conn.execute(
            "INSERT INTO funnels (tenant_id, name, kind, stages) VALUES ($1, $2, $3, $4::json)",
            *(tenant_id, "practice", "practice", json.dumps(stages)),
        )
        # The tenant was there before its data, as in production (a run rolls funnels up from
        # its creation).
        await conn.execute("UPDATE tenants SET created_at = $1", first_day - timedelta(days=1))
        await conn.execute("VACUUM ANALYZE")
        return open_id
    finally:
        await conn.close()


async def close(dsn: str, session_id: str, now: datetime) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE sessions SET status = 'completed', ended_at = $2 WHERE id = $1",
            session_id,
            now,
        )
    finally:
        await conn.close()


def timed_run(env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    said = cli(env, "rollup", "--tenant", "bench", *args)
    return time.perf_counter() - started, said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--per-day", type=int, default=200)
    args = parser.parse_args()
    now = datetime.now(UTC)

    with database("postgresql") as url:
        env = {**os.environ, "SESSIONMETER_STORAGE_URL": url}
        cli(env, "db", "upgrade")
        cli(env, "tenants", "create", "bench")
        open_id = asyncio.run(load(url, args.days, args.per_day, now))
        since = (now - timedelta(days=args.days + 1)).isoformat()
        seconds, said = timed_run(env, "--since", since)
        print(
            f"rollup runs (PostgreSQL 15, {args.days} days of {args.per_day} sessions a day, "
            f"{EVENTS_PER_SESSION} events each):"
        )
        print(f"  first, --since {since}: {seconds:.1f} s ({said})")
        for n in (1, 2):
            seconds, said = timed_run(env)
            print(f"  with one session open {args.days} days, run {n}: {seconds:.1f} s ({said})")
        asyncio.run(close(url, open_id, now))
        for n in (1, 2, 3):
            seconds, said = timed_run(env)
            print(f"  after it closed, run {n}: {seconds:.1f} s ({said})")


if __name__ == "__main__":
    main()
