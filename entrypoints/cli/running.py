"""How a command runs: its settings, one job against the configured storage, the tenant it names,
and the exit status of a job that could not serve every tenant."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

import click
from pymongo import uri_parser
from pymongo.errors import PyMongoError
from sqlalchemy.engine import make_url

from adapters.sqlalchemy.engine import sqlite_file
from application.storage import StorageError
from application.tenants.tenant_jobs import TenantFailure
from domain.errors import DomainError, NotFound
from domain.tenants import Tenant
from entrypoints.cli.output import OutputFailed, not_text, output_failed
from entrypoints.container import Container, build_container
from entrypoints.lifespan import storage_opened
from entrypoints.settings import Settings

T = TypeVar("T")


def settings_of(ctx: click.Context) -> Settings:
    """The environment's settings with the command line's overrides. Read when a command needs
    them, so that --help works whatever the environment holds; a bad value is one line."""
    try:
        settings = Settings.from_env(**ctx.obj)
        _check_storage_url(settings)
    except ValueError as error:
        raise click.ClickException(f"configuration: {error}") from None
    return settings


def _check_storage_url(settings: Settings) -> None:
    """An unknown scheme, a port that is no number or a MongoDB URL without a host raise here,
    as one line, not from the driver mid-command. (A DNS seed list, mongodb+srv://, is read
    when the client connects.)"""
    url, family = settings.storage_url, settings.storage_family
    try:
        if family == "sqlalchemy":
            make_url(url).port  # noqa: B018 - reading the port checks it
        elif family == "mongodb" and not url.lower().startswith("mongodb+srv:"):
            uri_parser.parse_uri(url)
    except (ValueError, PyMongoError) as error:
        raise ValueError(f"SESSIONMETER_STORAGE_URL: {error}") from None


# Seconds a command waits for a database that does not answer (a wrong port, a server down)
# before it says so: an operator at a prompt wants the error, not the drivers' 30 or 60 s.
COMMAND_WAIT_SECONDS = 5.0


def run(
    ctx: click.Context,
    job: Callable[[Container], Awaitable[T]],
    wait_seconds: float | None = COMMAND_WAIT_SECONDS,
) -> T:
    """Run one job against the configured storage, closing it afterwards; domain and storage
    errors become a one-line message and exit code 1, never a traceback. `wait_seconds`: how
    long a database that does not answer is waited for (None: the drivers' own)."""
    settings = replace(settings_of(ctx), storage_wait_seconds=wait_seconds)
    _check_sqlite_file(ctx, settings)
    container = build_container(settings)

    async def main() -> T:
        async with storage_opened(container):
            return await job(container)

    try:
        return asyncio.run(main())
    except DomainError as error:
        raise click.ClickException(one_line(error.detail)) from None
    except UnicodeDecodeError as error:  # a file the job reads (an import)
        raise not_text(error) from None
    except OutputFailed as failed:  # a job's own writes (an export)
        assert isinstance(failed.__cause__, OSError)
        output_failed(ctx, failed.__cause__)
    except (OSError, StorageError) as error:
        raise _storage_failed(error) from None


def one_line(text: str) -> str:
    """What an error says, on one line whatever the operator typed: characters that do not print
    (a newline, a NUL) written as Python writes them in a string."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# The commands that make a new SQLite database where none is: the others only open one.
CREATING = ("db upgrade", "serve")


def _check_sqlite_file(ctx: click.Context, settings: Settings) -> None:
    """A SQLite file URL names a database there is, or one the command makes in a directory
    there is: not a directory, and not a mistyped name (SQLite would make an empty database
    there, which a later `db upgrade` with the same typo would fill)."""
    path = sqlite_file(settings.storage_url)
    if path is None:
        return
    shown = one_line(str(path))
    if path.is_dir():
        raise _storage_failed(f"{shown} is a directory, not a SQLite database")
    if not path.exists():
        if not path.parent.is_dir():
            missing = one_line(str(path.parent))
            raise _storage_failed(f"no directory {missing} for the SQLite database", hint=False)
        if ctx.command_path.split(" ", 1)[-1] not in CREATING:
            raise _storage_failed(f"no SQLite database at {shown}")


def _storage_failed(error: Exception | str, hint: bool = True) -> click.ClickException:
    """Failures of the storage itself that an operator causes and fixes: a server that is down,
    a file that cannot be opened, a schema not migrated yet (`hint`: say how a new database is
    made)."""
    # The first line is the one for an operator; the rest (SQL, parameters) is for developers.
    cause = (str(error).strip() or type(error).__name__).splitlines()[0]
    how = "; a new database needs `sessionmeter db upgrade`" if hint else ""
    return click.ClickException(f"storage error: {one_line(cause)} (check --storage-url{how})")


async def tenant_named(container: Container, name: str) -> Tenant:
    # No tenant's name holds a NUL (creating one refuses it), which PostgreSQL cannot compare.
    tenants = container.storage.tenants()
    tenant: Tenant | None = None if "\x00" in name else await tenants.get_by_name(name)
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
