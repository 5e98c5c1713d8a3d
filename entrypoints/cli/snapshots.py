"""`sessionmeter snapshots`: media servers' resource snapshots loaded from a file."""

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import chain
from typing import IO, Any

import click

from application.snapshots.record_snapshots import RecordSnapshots, RecordSnapshotsCommand
from domain.errors import InvalidInput
from domain.snapshots import Snapshot
from entrypoints.cli.options import tenant_option
from entrypoints.cli.output import Passes, steady_copy
from entrypoints.cli.running import run, tenant_named
from entrypoints.container import Container

SNAPSHOT_BATCH = 1000


@click.group()
def snapshots() -> None:
    """Resource snapshots of media servers (CPU, memory, traffic, users)."""


@snapshots.command("import")
@click.argument("source", type=click.File("r", encoding="utf-8"))
@tenant_option(required=True)
@click.pass_context
def import_snapshots(ctx: click.Context, source: IO[str], tenant_name: str) -> None:
    """Load a CSV (with a header row) or JSON Lines export of snapshots: source, at,
    cpu_percent, memory_percent, memory_mb, traffic_bytes_total, concurrent_users,
    active_rooms. Every line is checked before any is stored; loading it again adds nothing."""

    async def job(c: Container) -> tuple[int, int]:
        tenant = await tenant_named(c, tenant_name)
        record: RecordSnapshots = c.use_cases.record_snapshots()
        passes = Passes(file)
        read = sum(1 for _ in _snapshot_rows(passes))  # the checking pass
        new, batch = 0, []
        for snapshot in _snapshot_rows(passes):
            batch.append(snapshot)
            if len(batch) == SNAPSHOT_BATCH:
                new += (await record(RecordSnapshotsCommand(tenant.id, batch))).new
                batch = []
        if batch:
            new += (await record(RecordSnapshotsCommand(tenant.id, batch))).new
        return read, new

    with steady_copy(source) as file:
        read, new = run(ctx, job)
    click.echo(f"{read} snapshot(s) read, {new} new, {read - new} already stored")


def _snapshot_rows(lines: Iterable[str]) -> Iterator[Snapshot]:
    """The snapshots of a CSV or JSON Lines file; a line that holds none is InvalidInput
    naming it."""
    lines = iter(lines)
    first = next(lines, "")
    rows: Iterator[tuple[int, Any]]
    parse: Callable[[Any], Any]
    if first.lstrip().startswith("{"):
        every = enumerate(chain([first], lines), 1)
        rows, parse = ((n, line) for n, line in every if line.strip()), json.loads
    else:
        rows, parse = enumerate(csv.DictReader(chain([first], lines)), 2), dict
    for number, raw in rows:
        try:
            row = parse(raw)
            yield Snapshot(
                str(row["source"]),
                datetime.fromisoformat(str(row["at"])),
                float(row["cpu_percent"]),
                float(row["memory_percent"]),
                float(row["memory_mb"]),
                int(row["traffic_bytes_total"]),
                int(row["concurrent_users"]),
                int(row["active_rooms"]),
            )
        except InvalidInput as error:
            raise InvalidInput(f"line {number}", error.detail) from None
        except (KeyError, ValueError, TypeError) as error:
            raise InvalidInput(f"line {number}", f"not a snapshot ({error!r})") from None
