"""`sessionmeter db`: the storage's schema."""

import click

from entrypoints.cli.running import run, settings_of


@click.group()
def db() -> None:
    """The storage's schema."""


@db.command()
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Create or migrate the schema of the configured storage (safe to repeat)."""
    run(ctx, lambda c: c.storage.backend().migrate())
    click.echo(f"storage is up to date ({settings_of(ctx).storage_family})")
