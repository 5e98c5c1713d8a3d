"""`sessionmeter sessions`: sessions."""

import click

from application.sessions.reap_stale_sessions import ReapStaleSessionsCommand
from entrypoints.cli.options import tenant_option
from entrypoints.cli.running import exit_on_failures, run


@click.group()
def sessions() -> None:
    """Sessions."""


@sessions.command("reap")
@tenant_option(required=False)
@click.pass_context
def reap(ctx: click.Context, tenant_name: str | None) -> None:
    """Close stale sessions now, where they were last seen."""
    command = ReapStaleSessionsCommand(tenant_name)
    reaped = run(ctx, lambda c: c.jobs.reap_stale_sessions()(command))
    click.echo(f"{reaped.closed} stale session(s) closed")
    exit_on_failures(ctx, reaped.failures)
