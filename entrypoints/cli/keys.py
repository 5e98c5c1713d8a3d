"""`sessionmeter keys`: tenants' API keys."""

import click

from application.tenants.create_api_key import CreateApiKeyCommand
from domain.tenants import Role
from entrypoints.cli.options import tenant_option
from entrypoints.cli.running import run


@click.group()
def keys() -> None:
    """API keys (stored hashed: a key is shown once)."""


@keys.command("create")
@tenant_option(required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.pass_context
def create_key(ctx: click.Context, tenant_name: str, role: str) -> None:
    """Create a key; the key alone is the last line printed."""
    command = CreateApiKeyCommand(tenant_name, role)
    created = run(ctx, lambda c: c.use_cases.create_api_key()(command))
    click.echo(f"{role} key {created.key.id} for tenant {tenant_name} (shown once, store it now):")
    click.echo(created.secret)
