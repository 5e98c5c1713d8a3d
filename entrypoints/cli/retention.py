"""`sessionmeter retention`: deleting what tenants keep only for a while."""

import click

from application.retention.apply_retention import ApplyRetentionCommand
from entrypoints.cli.options import tenant_option
from entrypoints.cli.running import exit_on_failures, run


@click.group()
def retention() -> None:
    """Deleting what tenants keep only for a while (snapshots, events, hourly rollups, ended
    sessions when a tenant sets session_retention_days)."""


@retention.command("apply")
@tenant_option(required=False)
@click.pass_context
def apply_retention(ctx: click.Context, tenant_name: str | None) -> None:
    """Delete snapshots, events, rollups, device errors, performance metrics and ended sessions
    (session_retention_days; never one with a sale or a charge, nor one a plan's limit counts)
    older than each tenant keeps them, in bounded batches; finish erasures a failure left
    unfinished 10 minutes ago or more."""
    command = ApplyRetentionCommand(tenant_name)
    deleted = run(ctx, lambda c: c.jobs.apply_retention()(command))
    click.echo(
        f"deleted {deleted.snapshots} snapshot(s), {deleted.events} event(s), "
        f"{deleted.hourly_rollups} hourly and {deleted.daily_rollups} daily rollup(s), "
        f"{deleted.webhook_ids} webhook id(s), {deleted.errors} error(s), "
        f"{deleted.metrics} performance metric(s), {deleted.sessions} session(s); "
        f"finished {deleted.erasures_finished} erasure(s)"
    )
    exit_on_failures(ctx, deleted.failures)
