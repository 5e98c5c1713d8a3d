"""`sessionmeter livekit`: LiveKit servers, their webhooks and their rooms."""

import click

from application.livekit.add_livekit_account import AddLiveKitAccountCommand
from application.livekit.reconcile_livekit import ReconcileLiveKitCommand
from entrypoints.cli.options import tenant_option
from entrypoints.cli.running import exit_on, run


@click.group()
def livekit() -> None:
    """LiveKit servers whose webhooks this service accepts, and whose rooms it reconciles."""


@livekit.command("add")
@tenant_option(required=True)
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
    command = AddLiveKitAccountCommand(tenant_name, api_key, api_secret, url)
    run(ctx, lambda c: c.use_cases.add_livekit_account()(command))
    server = f" (server {url})" if url else ""
    click.echo(f"LiveKit API key {api_key} registered for tenant {tenant_name}{server}")


@livekit.command("reconcile")
@tenant_option(required=False)
@click.pass_context
def reconcile_livekit(ctx: click.Context, tenant_name: str | None) -> None:
    """Ask each LiveKit server with a URL who is in the rooms of open stays, now: a participant
    still there was seen now, one who left ends where last seen. Exits 1 when a server did not
    answer or a tenant failed (the others are reconciled all the same)."""
    command = ReconcileLiveKitCommand(tenant_name)
    done = run(ctx, lambda c: c.jobs.reconcile_livekit()(command))
    unknown = f", {done.unknown} left as they were" if done.unknown else ""
    click.echo(
        f"{done.present} stay(s) still in their room, {done.ended} ended{unknown} "
        f"({done.tenants} tenant(s) with a LiveKit server)"
    )
    exit_on(ctx, done.problems)
