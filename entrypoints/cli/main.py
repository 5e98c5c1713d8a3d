"""`sessionmeter`: serve the API, migrate storage, create tenants and keys, reap stale sessions,
move a tenant between stores.

Configuration options have environment variables (shown in --help); options win over them.
"""

import asyncio
import csv
import io
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import nullcontext
from datetime import datetime
from importlib.metadata import version
from typing import Any, TypeVar

import click
import uvicorn
from pymongo.errors import PyMongoError
from sqlalchemy.exc import SQLAlchemyError
from uvicorn.config import LOG_LEVELS

from application.credits.grant_credits import GrantCreditsCommand, Granted
from application.tenants.tenant_jobs import TenantFailure
from application.transfer.import_tenant import ImportCounts
from domain.credits import Balance
from domain.errors import DomainError, InvalidInput, NotFound
from domain.reports import WatchTime
from domain.snapshots import Snapshot
from domain.tenants import Tenant
from entrypoints.container import Container, build_container
from entrypoints.lifespan import storage_opened
from entrypoints.settings import DEFAULT_STORAGE_URL, Settings

T = TypeVar("T")

# Failures of the storage itself that an operator causes and fixes: a server that is down, a
# file that cannot be opened, a schema not migrated yet.
STORAGE_ERRORS = (OSError, SQLAlchemyError, PyMongoError)


def settings_of(ctx: click.Context) -> Settings:
    """The environment's settings with the command line's overrides. Read when a command needs
    them, so that --help works whatever the environment holds; a bad value is one line."""
    try:
        settings = Settings.from_env(**ctx.obj)
        settings.storage_family  # noqa: B018 - an unknown URL scheme raises here, not mid-command
    except ValueError as error:
        raise click.ClickException(f"configuration: {error}") from None
    return settings


def run(ctx: click.Context, job: Callable[[Container], Awaitable[T]]) -> T:
    """Run one job against the configured storage, closing it afterwards; domain and storage
    errors become a one-line message and exit code 1, never a traceback."""
    settings = settings_of(ctx)
    container = build_container(settings)

    async def main() -> T:
        async with storage_opened(container):
            return await job(container)

    try:
        return asyncio.run(main())
    except DomainError as error:
        raise click.ClickException(error.detail) from None
    except STORAGE_ERRORS as error:
        # The driver's message is the first line; the rest (SQL, parameters) is for developers.
        cause = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise click.ClickException(
            f"storage error: {cause} (check --storage-url; a new database needs "
            "`sessionmeter db upgrade`)"
        ) from None


def exit_on(ctx: click.Context, failures: list[TenantFailure]) -> None:
    """A job served every tenant it could; those it could not are one line each on standard
    error, and the exit status is 1."""
    for failure in failures:
        click.echo(f"Error: tenant {failure.tenant_name}: {failure.error}", err=True)
    if failures:
        ctx.exit(1)


@click.group()
@click.version_option(version("sessionmeter"), prog_name="sessionmeter")
@click.option(
    "--storage-url",
    envvar="SESSIONMETER_STORAGE_URL",
    default=DEFAULT_STORAGE_URL,
    show_default=True,
    show_envvar=True,
    help="sqlite:///path.db, postgresql://user@host/db, mongodb://host/db or memory://",
)
@click.pass_context
def cli(ctx: click.Context, storage_url: str) -> None:
    """Meter sessions: record entry and exit, accumulate usage, report."""
    ctx.obj = {"storage_url": storage_url}


@cli.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, envvar="SESSIONMETER_HOST", show_envvar=True
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    envvar="SESSIONMETER_PORT",
    show_envvar=True,
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    envvar="SESSIONMETER_WORKERS",
    show_envvar=True,
)
@click.option(
    "--reaper-interval",
    type=click.FloatRange(min=0),
    envvar="SESSIONMETER_REAPER_INTERVAL_SECONDS",
    show_envvar=True,
    help="Seconds between runs of the stale-session reaper (0 turns it off). [default: 30]",
)
@click.option(
    "--retention-interval",
    type=click.FloatRange(min=0),
    envvar="SESSIONMETER_RETENTION_INTERVAL_SECONDS",
    show_envvar=True,
    help="Seconds between runs of retention (0 turns it off). [default: 3600]",
)
@click.option(
    "--rollup-interval",
    type=click.FloatRange(min=0),
    envvar="SESSIONMETER_ROLLUP_INTERVAL_SECONDS",
    show_envvar=True,
    help="Seconds between rollup runs (0 turns them off). [default: 300]",
)
@click.option(
    "--livekit-reconcile-interval",
    type=click.FloatRange(min=0),
    envvar="SESSIONMETER_LIVEKIT_RECONCILE_INTERVAL_SECONDS",
    show_envvar=True,
    help="Seconds between asking LiveKit servers who is in the rooms of open stays (0 turns it "
    "off). [default: 300]",
)
@click.option(
    "--keep-alive",
    type=click.IntRange(min=1),
    default=75,
    show_default=True,
    envvar="SESSIONMETER_KEEP_ALIVE_SECONDS",
    show_envvar=True,
    help="Seconds an idle client connection stays open; longer than a load balancer's idle timeout.",
)
@click.option(
    "--log-level",
    type=click.Choice(list(LOG_LEVELS), case_sensitive=False),
    default="info",
    show_default=True,
    envvar="SESSIONMETER_LOG_LEVEL",
    show_envvar=True,
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    workers: int,
    reaper_interval: float | None,
    retention_interval: float | None,
    rollup_interval: float | None,
    livekit_reconcile_interval: float | None,
    keep_alive: int,
    log_level: str,
) -> None:
    """Serve the HTTP API (migrating the storage first)."""
    settings = settings_of(ctx)
    if settings.storage_family == "memory" and workers > 1:
        raise click.ClickException("memory:// keeps data per process: serve it with one worker")
    run(ctx, lambda c: c.storage.backend().migrate())
    # Workers build their own app from the environment, so configuration travels there.
    os.environ["SESSIONMETER_STORAGE_URL"] = settings.storage_url
    if reaper_interval is not None:
        os.environ["SESSIONMETER_REAPER_INTERVAL_SECONDS"] = str(reaper_interval)
    if retention_interval is not None:
        os.environ["SESSIONMETER_RETENTION_INTERVAL_SECONDS"] = str(retention_interval)
    if rollup_interval is not None:
        os.environ["SESSIONMETER_ROLLUP_INTERVAL_SECONDS"] = str(rollup_interval)
    if livekit_reconcile_interval is not None:
        os.environ["SESSIONMETER_LIVEKIT_RECONCILE_INTERVAL_SECONDS"] = str(
            livekit_reconcile_interval
        )
    uvicorn.run(
        "entrypoints.http.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_keep_alive=keep_alive,
        log_level=log_level,
    )


@cli.group()
def db() -> None:
    """The storage's schema."""


@db.command()
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Create or migrate the schema of the configured storage (safe to repeat)."""
    run(ctx, lambda c: c.storage.backend().migrate())
    click.echo(f"storage is up to date ({settings_of(ctx).storage_family})")


@cli.group()
def tenants() -> None:
    """Tenants: teams whose data is kept apart."""


@tenants.command("create")
@click.argument("name")
@click.pass_context
def create_tenant(ctx: click.Context, name: str) -> None:
    """Create a tenant."""
    tenant = run(ctx, lambda c: c.use_cases.create_tenant()(name))
    click.echo(f"tenant {tenant.name} created (id {tenant.id})")


@cli.group()
def keys() -> None:
    """API keys (stored hashed: a key is shown once)."""


@keys.command("create")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--role", type=click.Choice(["admin", "ingest"]), required=True)
@click.pass_context
def create_key(ctx: click.Context, tenant_name: str, role: str) -> None:
    """Create a key; the key alone is the last line printed."""
    key, secret = run(ctx, lambda c: c.use_cases.create_api_key()(tenant_name, role))
    click.echo(f"{role} key {key.id} for tenant {tenant_name} (shown once, store it now):")
    click.echo(secret)


@cli.group()
def sessions() -> None:
    """Sessions."""


@sessions.command("reap")
@click.option("--tenant", "tenant_name", help="Only this tenant (default: every tenant).")
@click.pass_context
def reap(ctx: click.Context, tenant_name: str | None) -> None:
    """Close stale sessions now, where they were last seen."""
    reaped = run(ctx, lambda c: c.jobs.reap_stale_sessions()(tenant_name))
    click.echo(f"{reaped.closed} stale session(s) closed")
    exit_on(ctx, reaped.failures)


@cli.group()
def credits() -> None:
    """Subjects' credits."""


async def _tenant_named(container: Container, name: str) -> Tenant:
    tenant = await container.storage.tenants().get_by_name(name)
    if tenant is None:
        raise NotFound(f"no tenant named {name}")
    return tenant


@credits.command("grant")
@click.argument("subject")
@click.argument("amount", type=int)
@click.option("--tenant", "tenant_name", required=True)
@click.option("--reason", default="granted by an operator", show_default=True)
@click.option(
    "--idempotency-key",
    help="Repeat the command with the same key and the grant is made once. [default: new]",
)
@click.pass_context
def grant(
    ctx: click.Context,
    subject: str,
    amount: int,
    tenant_name: str,
    reason: str,
    idempotency_key: str | None,
) -> None:
    """Grant AMOUNT credits to SUBJECT."""
    key = idempotency_key or str(uuid.uuid4())

    async def job(c: Container) -> tuple[Granted, Balance]:
        tenant = await _tenant_named(c, tenant_name)
        command = GrantCreditsCommand(tenant.id, subject, amount, reason, key)
        granted = await c.use_cases.grant_credits()(command)
        return granted, await c.use_cases.get_balance()(tenant.id, subject)

    granted, balance = run(ctx, job)
    verb = "granted" if granted.created else "already granted"
    click.echo(
        f"{verb} {granted.entry.amount} credits to {subject} (key {key}); balance {balance.balance}"
    )


@credits.command("balance")
@click.argument("subject")
@click.option("--tenant", "tenant_name", required=True)
@click.pass_context
def balance(ctx: click.Context, subject: str, tenant_name: str) -> None:
    """Show SUBJECT's balance, granted and consumed credits."""

    async def job(c: Container) -> Balance:
        return await c.use_cases.get_balance()((await _tenant_named(c, tenant_name)).id, subject)

    found = run(ctx, job)
    click.echo(
        f"{subject}: balance {found.balance} (granted {found.granted}, consumed {found.consumed})"
    )


@cli.group()
def report() -> None:
    """Reports."""


WATCH_TIME_COLUMNS = ("subject_id", "visit_count", "total_seconds", "avg_seconds", "unique_seconds")


@report.command("watch-time")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--resource", "resource_id", required=True, help="The webinar, room, … reported on.")
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.pass_context
def watch_time(ctx: click.Context, tenant_name: str, resource_id: str, output: str) -> None:
    """Watch time per viewer of one resource (overlapping sessions counted once)."""

    async def job(c: Container) -> list[WatchTime]:
        tenant = await _tenant_named(c, tenant_name)
        return await c.use_cases.report_watch_time()(tenant.id, resource_id)

    rows = [
        (w.subject_id, w.visit_count, w.total_seconds, w.avg_seconds, w.unique_seconds)
        for w in run(ctx, job)
    ]
    if output == "json":
        click.echo(json.dumps([dict(zip(WATCH_TIME_COLUMNS, row, strict=True)) for row in rows]))
    elif output == "csv":
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows([WATCH_TIME_COLUMNS, *rows])
        click.echo(text.getvalue(), nl=False)
    else:
        widths = [
            max(len(str(v)) for v in column)
            for column in zip(WATCH_TIME_COLUMNS, *rows, strict=True)
        ]
        for row in (WATCH_TIME_COLUMNS, *rows):
            click.echo(
                "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            )


@cli.command("export")
@click.option("--tenant", "tenant_name", required=True)
@click.pass_context
def export_tenant(ctx: click.Context, tenant_name: str) -> None:
    """Write a tenant's whole state to standard output as JSON Lines (for `import`)."""
    progress = Progress("exported")

    async def job(c: Container) -> None:
        async for line in await c.use_cases.export_tenant()(tenant_name):
            sys.stdout.write(line + "\n")
            progress.one()

    run(ctx, job)
    progress.done()


@cli.command("import")
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.pass_context
def import_tenant(ctx: click.Context, source: io.TextIOBase) -> None:
    """Import a tenant exported from any store (a file, or standard input); repeating it adds
    nothing."""
    size = os.fstat(source.fileno()).st_size if source is not sys.stdin else 0
    bar = click.progressbar(length=size, label="importing", file=sys.stderr)
    with bar if _watched() and size else nullcontext() as shown:

        def lines() -> Iterator[str]:
            for line in source:
                if shown is not None:
                    shown.update(len(line.encode()))
                yield line

        counts: ImportCounts = run(ctx, lambda c: c.use_cases.import_tenant()(lines()))
    new = ", ".join(f"{n} {kind}" for kind, n in counts.new.items() if n) or "nothing"
    click.echo(f"imported: {new} ({sum(counts.present.values())} already present)")


class Progress:
    """A running count of records on standard error, only when a person is watching it."""

    def __init__(self, verb: str) -> None:
        self._verb = verb
        self._count = 0
        self._shown = _watched()

    def one(self) -> None:
        self._count += 1
        if self._shown and self._count % 1000 == 0:
            click.echo(f"\r{self._verb} {self._count:,} records", nl=False, err=True)

    def done(self) -> None:
        if self._shown:
            click.echo(f"\r{self._verb} {self._count:,} records", err=True)


def _watched() -> bool:
    return sys.stderr.isatty()


@cli.group()
def livekit() -> None:
    """LiveKit servers whose webhooks this service accepts, and whose rooms it reconciles."""


@livekit.command("add")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--api-key", required=True, help="The `keys:` name in livekit.yaml.")
@click.option(
    "--api-secret",
    required=True,
    envvar="SESSIONMETER_LIVEKIT_API_SECRET",
    show_envvar=True,
    help="Its secret (stored to verify webhooks and sign requests; never printed).",
)
@click.option(
    "--url",
    help="The server's http(s) URL, e.g. https://lk.example.com: reconciliation asks it who is "
    "in its rooms. [default: the one registered before, or none: webhooks only]",
)
@click.pass_context
def add_livekit(
    ctx: click.Context, tenant_name: str, api_key: str, api_secret: str, url: str | None
) -> None:
    """Accept webhooks signed with this API key, as the tenant's."""
    run(ctx, lambda c: c.use_cases.add_livekit_account()(tenant_name, api_key, api_secret, url))
    server = f" (server {url})" if url else ""
    click.echo(f"LiveKit API key {api_key} registered for tenant {tenant_name}{server}")


@livekit.command("reconcile")
@click.option("--tenant", "tenant_name", help="Only this tenant (default: every tenant).")
@click.pass_context
def reconcile_livekit(ctx: click.Context, tenant_name: str | None) -> None:
    """Ask each LiveKit server with a URL who is in the rooms of open stays, now: a participant
    still there was seen now, one who left ends where last seen. Exits 1 when a server did not
    answer or a tenant failed (the others are reconciled all the same)."""
    done = run(ctx, lambda c: c.jobs.reconcile_livekit()(tenant_name))
    unknown = f", {done.unknown} left as they were" if done.unknown else ""
    click.echo(
        f"{done.present} stay(s) still in their room, {done.ended} ended{unknown} "
        f"({done.tenants} tenant(s) with a LiveKit server)"
    )
    for problem in done.problems:
        click.echo(f"Error: {problem}", err=True)
    if done.problems:
        ctx.exit(1)


@cli.group()
def snapshots() -> None:
    """Resource snapshots of media servers (CPU, memory, traffic, users)."""


SNAPSHOT_BATCH = 1000


@snapshots.command("import")
@click.argument("source", type=click.File("r", encoding="utf-8"))
@click.option("--tenant", "tenant_name", required=True)
@click.pass_context
def import_snapshots(ctx: click.Context, source: io.TextIOBase, tenant_name: str) -> None:
    """Load a CSV (with a header row) or JSON Lines export of snapshots: source, at,
    cpu_percent, memory_percent, memory_mb, traffic_bytes_total, concurrent_users,
    active_rooms. Loading it again adds nothing."""

    async def job(c: Container) -> tuple[int, int]:
        tenant = await _tenant_named(c, tenant_name)
        record, read, new, batch = c.use_cases.record_snapshots(), 0, 0, []
        for snapshot in _snapshot_rows(source):
            batch.append(snapshot)
            read += 1
            if len(batch) == SNAPSHOT_BATCH:
                new += await record(tenant.id, batch)
                batch = []
        return read, new + (await record(tenant.id, batch) if batch else 0)

    read, new = run(ctx, job)
    click.echo(f"{read} snapshot(s) read, {new} new, {read - new} already stored")


def _snapshot_rows(source: io.TextIOBase) -> Iterator[Snapshot]:
    lines = iter(source)
    first = next(lines, "")
    rows: Iterator[tuple[int, dict[str, Any]]]
    if first.lstrip().startswith("{"):
        rows = ((n, json.loads(line)) for n, line in enumerate([first, *lines], 1) if line.strip())
    else:
        rows = enumerate(csv.DictReader([first, *lines]), 2)
    for number, row in rows:
        try:
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


class Instant(click.ParamType):
    name = "TIMESTAMP"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            at = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an RFC 3339 timestamp", param, ctx)
        if at.tzinfo is None:
            self.fail(f"{value!r} needs a UTC offset (Z or +HH:MM)", param, ctx)
        return at


INSTANT = Instant()


@cli.command("rollup")
@click.option("--tenant", "tenant_name", help="Only this tenant (default: every tenant).")
@click.option(
    "--since",
    type=INSTANT,
    help="Recompute from this instant (RFC 3339, e.g. 2026-11-24T00:00:00Z) instead of where "
    "the previous run stopped; e.g. after importing old snapshots.",
)
@click.pass_context
def rollup(ctx: click.Context, tenant_name: str | None, since: datetime | None) -> None:
    """Roll usage up into hours and days now (the server does it every few minutes)."""
    bar = HourBar()
    done = run(ctx, lambda c: c.jobs.roll_up_usage()(tenant_name, since, bar.show))
    bar.done()
    skipped = f"; {done.skipped} skipped (another runner had them)" if done.skipped else ""
    click.echo(
        f"rolled up {done.hours} hour(s) and {done.days} day(s) of {done.tenants} tenant(s)"
        + skipped
    )
    exit_on(ctx, done.failures)


class HourBar:
    """A progress bar of hours rolled up, on standard error when a person is watching."""

    WIDTH = 30

    def __init__(self) -> None:
        self._shown = _watched()

    def show(self, done: int, planned: int) -> None:
        if self._shown and planned:
            filled = self.WIDTH * done // planned
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            click.echo(f"\rrolling up [{bar}] {done}/{planned} hours", nl=False, err=True)

    def done(self) -> None:
        if self._shown:
            click.echo(err=True)


@cli.group()
def retention() -> None:
    """Deleting what tenants keep only for a while (snapshots, events, hourly rollups)."""


@retention.command("apply")
@click.option("--tenant", "tenant_name", help="Only this tenant (default: every tenant).")
@click.pass_context
def apply_retention(ctx: click.Context, tenant_name: str | None) -> None:
    """Delete snapshots, events and rollups older than each tenant keeps them, in bounded
    batches."""
    deleted = run(ctx, lambda c: c.jobs.apply_retention()(tenant_name))
    click.echo(
        f"deleted {deleted.snapshots} snapshot(s), {deleted.events} event(s), "
        f"{deleted.hourly_rollups} hourly and {deleted.daily_rollups} daily rollup(s), "
        f"{deleted.webhook_ids} webhook id(s)"
    )
    exit_on(ctx, deleted.failures)
