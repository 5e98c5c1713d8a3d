"""Retention behind the sessions the books keep: how long one run takes to delete the expired
sessions of a tenant whose older sessions are mostly kept (charged: the books keep them).

    .venv/bin/python benchmarks/retention.py [--kept 100000] [--expired 10000]
                                             [--storage postgresql|sqlite]

A throwaway database (PostgreSQL, or a SQLite file), migrated. A tenant keeps its sessions 30
days (`session_retention_days`). --kept charged sessions and --expired uncharged ones, all ended
60 days ago and interleaved in end order (one expired among every kept/expired), are written
straight into the database in the service's own formats (harness.store_sessions). Then one
retention run (ApplyRetention, as the server's job runs it) is timed: it deletes every expired
session, a step of domain-sized pages at a time, and keeps every charged one.

Prints the sessions deleted and kept, and the run's seconds.
"""

import argparse
import asyncio
import time
from datetime import timedelta
from typing import Any

from harness import cli, database, deployed_sessions, store_sessions

from application.retention.apply_retention import ApplyRetentionCommand
from application.tenants.create_tenant import CreateTenantCommand
from application.tenants.update_settings import UpdateSettingsCommand
from entrypoints.container import build_container
from entrypoints.settings import Settings

RETENTION_DAYS = 30


def ended_sessions(tenant_id: str, kept: int, expired: int) -> list[dict[str, Any]]:
    """Sessions that ended about 60 days ago, in end order: one uncharged (expired) among every
    kept/expired, the others charged (kept)."""
    rows = deployed_sessions(tenant_id, kept + expired, ago=timedelta(days=60))
    every = max(1, len(rows) // max(expired, 1))
    for i, row in enumerate(rows):
        if i % every != 0 or i // every >= expired:
            row["charge_state"] = "charged"
    return rows


async def measure(url: str, kept: int, expired: int) -> None:
    container = build_container(Settings(storage_url=url))
    try:
        tenant = await container.use_cases.create_tenant()(CreateTenantCommand("acme"))
        changes = {"session_retention_days": RETENTION_DAYS}
        await container.use_cases.update_settings()(UpdateSettingsCommand(tenant, changes))
        rows = ended_sessions(tenant.id, kept, expired)
        await store_sessions(url, rows)
        began = time.perf_counter()
        done = await container.jobs.apply_retention()(ApplyRetentionCommand())
        took = time.perf_counter() - began
    finally:
        await container.storage.backend().close()
    uncharged = sum(r["charge_state"] == "none" for r in rows)
    print(
        f"retention: {done.sessions:,} of {uncharged:,} expired sessions deleted behind "
        f"{len(rows) - uncharged:,} kept, in {took:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kept", type=int, default=100_000)
    parser.add_argument("--expired", type=int, default=10_000)
    parser.add_argument("--storage", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()
    with database(args.storage) as url:
        cli({"SESSIONMETER_STORAGE_URL": url, "PATH": "/usr/bin:/bin"}, "db", "upgrade")
        asyncio.run(measure(url, args.kept, args.expired))


if __name__ == "__main__":
    main()
