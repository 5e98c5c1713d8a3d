"""`sessionmeter keys`: tenants' API keys."""

from datetime import datetime

import click

from application.pagination import MAX_LIMIT
from application.tenants.create_api_key import CreateApiKeyCommand
from application.tenants.list_api_keys import ListApiKeys, ListApiKeysQuery
from application.tenants.revoke_api_key import RevokeApiKey, RevokeApiKeyCommand
from domain.tenants import ApiKey, Role
from entrypoints.cli.options import INSTANT, tenant_option
from entrypoints.cli.output import echo_rows, format_option
from entrypoints.cli.running import run, tenant_named
from entrypoints.container import Container


@click.group()
def keys() -> None:
    """API keys (stored hashed: a key is shown once)."""


@keys.command("create")
@tenant_option(required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--name", help="What the key is for: kiosk-17, billing back end.")
@click.option("--expires-at", type=INSTANT, help="When it stops working (RFC 3339).")
@click.option(
    "--resource",
    "resources",
    multiple=True,
    help="An ingest key for this resource or device only (repeat for several).",
)
@click.pass_context
def create_key(
    ctx: click.Context,
    tenant_name: str,
    role: str,
    name: str | None,
    expires_at: datetime | None,
    resources: tuple[str, ...],
) -> None:
    """Create a key; the key alone is the last line printed."""
    command = CreateApiKeyCommand(tenant_name, role, name, expires_at, resources or None)
    created = run(ctx, lambda c: c.use_cases.create_api_key()(command))
    click.echo(f"{role} key {created.key.id} for tenant {tenant_name} (shown once, store it now):")
    click.echo(created.secret)


KEY_COLUMNS = (
    "id",
    "name",
    "role",
    "resources",
    "created_at",
    "expires_at",
    "revoked_at",
    "last_used_at",
)


@keys.command("list")
@tenant_option(required=True)
@format_option
@click.pass_context
def list_keys(ctx: click.Context, tenant_name: str, output: str) -> None:
    """The tenant's keys, revoked ones too (never their secrets)."""

    async def job(c: Container) -> list[ApiKey]:
        tenant = await tenant_named(c, tenant_name)
        list_api_keys: ListApiKeys = c.use_cases.list_api_keys()
        found: list[ApiKey] = []
        cursor: str | None = None
        while True:  # every page
            page = await list_api_keys(ListApiKeysQuery(tenant.id, MAX_LIMIT, cursor))
            found += page.items
            if (cursor := page.next_cursor) is None:
                return found

    rows = [[getattr(k, column) for column in KEY_COLUMNS] for k in run(ctx, job)]
    echo_rows(output, KEY_COLUMNS, rows)


@keys.command("revoke")
@tenant_option(required=True)
@click.argument("key_id")
@click.pass_context
def revoke_key(ctx: click.Context, tenant_name: str, key_id: str) -> None:
    """Revoke a key: refused at once, by every server within 5 seconds."""

    async def job(c: Container) -> ApiKey:
        tenant = await tenant_named(c, tenant_name)
        revoke_api_key: RevokeApiKey = c.use_cases.revoke_api_key()
        return await revoke_api_key(RevokeApiKeyCommand(tenant.id, key_id))

    revoked = run(ctx, job)
    click.echo(f"key {revoked.id} revoked at {revoked.revoked_at:%Y-%m-%dT%H:%M:%SZ}")
