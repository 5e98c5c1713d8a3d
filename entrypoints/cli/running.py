"""How a command runs: its settings, one job against the configured storage, the tenant it names,
and the exit status of a job that could not serve every tenant."""

import asyncio
import os
import select
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
from pymongo import uri_parser
from pymongo.errors import PyMongoError
from sqlalchemy.engine import make_url

from application.storage import StorageError
from application.tenants.tenant_jobs import TenantFailure
from domain.errors import DomainError, NotFound
from domain.tenants import Tenant
from entrypoints.cli.output import not_text
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


def run(ctx: click.Context, job: Callable[[Container], Awaitable[T]]) -> T:
    """Run one job against the configured storage, closing it afterwards; domain and storage
    errors become a one-line message and exit code 1, never a traceback."""
    settings = settings_of(ctx)
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
    except BrokenPipeError as error:
        if _reader_gone():  # what reads the job's output went away (`| head`): stop quietly
            ctx.exit(1)
        raise _storage_failed(error) from None
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
    url = make_url(settings.storage_url)
    name = url.database or ""
    if url.get_backend_name() != "sqlite" or name in ("", ":memory:") or name.startswith("file:"):
        return
    path = Path(name)
    if path.is_dir():
        raise _storage_failed(f"{path} is a directory, not a SQLite database")
    if not path.exists():
        if not path.parent.is_dir():
            raise _storage_failed(f"no directory {path.parent} for the SQLite database {path}")
        if ctx.command_path.split(" ", 1)[-1] not in CREATING:
            raise _storage_failed(f"no SQLite database at {path}")


def _storage_failed(error: Exception | str) -> click.ClickException:
    """Failures of the storage itself that an operator causes and fixes: a server that is down,
    a file that cannot be opened, a schema not migrated yet."""
    # The first line is the one for an operator; the rest (SQL, parameters) is for developers.
    cause = (str(error).strip() or type(error).__name__).splitlines()[0]
    return click.ClickException(
        f"storage error: {one_line(cause)} (check --storage-url; a new database needs "
        "`sessionmeter db upgrade`)"
    )


def _reader_gone() -> bool:
    """Whether standard output is a pipe whose reader went away (and not, say, the storage's
    socket); if so, standard output points nowhere from here, so that flushing it at exit
    raises nothing."""
    poller = select.poll()
    poller.register(sys.stdout.fileno(), select.POLLOUT)
    if not any(events & select.POLLERR for _, events in poller.poll(0)):
        return False
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return True


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
