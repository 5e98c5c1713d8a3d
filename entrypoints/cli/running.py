"""How a command runs: its settings, one job against the configured storage, the tenant it names,
and the exit status of a job that could not serve every tenant."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from application.storage import StorageError
from application.tenants.tenant_jobs import TenantFailure
from domain.errors import DomainError, NotFound
from domain.tenants import Tenant
from entrypoints.container import Container, build_container
from entrypoints.lifespan import storage_opened
from entrypoints.settings import Settings

T = TypeVar("T")


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
    # Failures of the storage itself that an operator causes and fixes: a server that is down, a
    # file that cannot be opened, a schema not migrated yet.
    except (OSError, StorageError) as error:
        # The first line is the one for an operator; the rest (SQL, parameters) is for developers.
        cause = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise click.ClickException(
            f"storage error: {cause} (check --storage-url; a new database needs "
            "`sessionmeter db upgrade`)"
        ) from None


async def tenant_named(container: Container, name: str) -> Tenant:
    tenant: Tenant | None = await container.storage.tenants().get_by_name(name)
    if tenant is None:
        raise NotFound(f"no tenant named {name}")
    return tenant


def exit_on(ctx: click.Context, problems: list[str]) -> None:
    """A job did all it could; what it could not do is one line each on standard error, and the
    exit status is 1."""
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    if problems:
        ctx.exit(1)


def exit_on_failures(ctx: click.Context, failures: list[TenantFailure]) -> None:
    """A job served every tenant it could; those it could not make the exit status 1."""
    exit_on(ctx, [f"tenant {failure.tenant_name}: {failure.error}" for failure in failures])
