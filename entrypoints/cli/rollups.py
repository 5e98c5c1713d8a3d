"""`sessionmeter rollup`: usage rolled up into hours and days on demand."""

from datetime import datetime

import click

from application.rollups.roll_up_usage import RollUpUsageCommand
from entrypoints.cli.options import INSTANT, tenant_option
from entrypoints.cli.output import HourBar
from entrypoints.cli.running import exit_on_failures, run


@click.command("rollup")
@tenant_option(required=False)
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
    command = RollUpUsageCommand(tenant_name, since, bar.show)
    done = run(ctx, lambda c: c.jobs.roll_up_usage()(command))
    bar.done()
    funnels = f", and {done.funnel_days} funnel day(s)" if done.funnel_days else ""
    skipped = f"; {done.skipped} skipped (another runner had them)" if done.skipped else ""
    click.echo(
        f"rolled up {done.hours} hour(s) and {done.days} day(s) of {done.tenants} tenant(s)"
        + funnels
        + skipped
    )
    exit_on_failures(ctx, done.failures)
