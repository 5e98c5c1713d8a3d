"""`sessionmeter tenants`: teams whose data is kept apart."""

import click

from application.tenants.create_tenant import CreateTenantCommand
from entrypoints.cli.running import run


@click.group()
def tenants() -> None:
    """Tenants: teams whose data is kept apart."""


@tenants.command("create")
@click.argument("name")
@click.pass_context
def create_tenant(ctx: click.Context, name: str) -> None:
    """Create a tenant."""
    tenant = run(ctx, lambda c: c.use_cases.create_tenant()(CreateTenantCommand(name)))
    click.echo(f"tenant {tenant.name} created (id {tenant.id})")
